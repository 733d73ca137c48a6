"""The SurgVLP-family network and everything needed to run it: checkpoint loading, tokenizer, preprocessing."""
