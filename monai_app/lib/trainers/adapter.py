"""``surgvlp_adapter``: the few-shot phase head, trained from every case whose timeline a clinician finalised.

MONAI Label runs training in a child process (the stock ``/train`` endpoint), so the server keeps answering.
Each case is sampled as its corrected timeline was (same fps and range), which the server has usually embedded
already: training then costs no encoder time, only a few seconds of CPU. The adapter and its stats are written
atomically into the state folder; ``surgvlp_phase`` picks up the new adapter on its next request.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.tasks.train import TrainTask

from lib.datastores.video_datastore import VideoDatastore
from lib.model_service import ModelService
from lib.params import BadParameter, number, prompt_set
from surgvlp.atomic import atomic_write

DEFAULTS = {"prompt_set": "cholec80", "epochs": 300}


class AdapterTrainer(TrainTask):
    def __init__(self, service: ModelService) -> None:
        super().__init__("Few-shot phase adapter trained on every case with a final (corrected) timeline")
        self.service = service

    def config(self) -> Dict[str, Any]:
        return dict(DEFAULTS)

    def _stats_path(self, name: str):
        return self.service.adapter_path(name).with_suffix(".stats.json")

    def stats(self) -> Dict[str, Any]:
        """Per prompt set: when and on what the adapter was trained, and how well it fits its cases."""
        folder = self.service.adapters_dir
        found = {path.name.removesuffix(".stats.json"): json.loads(path.read_text(encoding="utf-8"))
                 for path in sorted(folder.glob("*.stats.json"))} if folder.is_dir() else {}
        return {"trained": bool(found), "adapters": found}

    def _cases(self, datastore: VideoDatastore, prompts: Any) -> list:
        import surgvlp
        from surgvlp.recognition.timeline import read_timeline

        cases, names = [], []
        for image_id in datastore.get_labeled_images(DefaultLabelTag.FINAL.value):
            label = datastore.labels.get(image_id, DefaultLabelTag.FINAL.value)
            timeline = read_timeline(label.path)
            if timeline.task != "phase" or timeline.class_names != prompts.class_names:
                continue
            sampled = timeline.source
            data, name = datastore.source_data(image_id)
            source = surgvlp.open_source(data, fps=sampled.get("sampled_fps"), start=sampled.get("start"),
                                         end=sampled.get("end"), name=name)
            cases.append((source, surgvlp.timeline_truth(timeline, prompts.class_names, image_id)))
            names.append(image_id)
        return cases, names

    def __call__(self, request: Dict[str, Any], datastore: VideoDatastore) -> Dict[str, Any]:
        import surgvlp

        prompts = prompt_set(request, DEFAULTS["prompt_set"], "phase")
        epochs = int(number(request, "epochs", DEFAULTS["epochs"], 1, 100_000))
        cases, names = self._cases(datastore, prompts)
        if not cases:
            raise BadParameter(f"no case has a final timeline with the classes of {prompts.name!r}; "
                               "correct a timeline and save it with tag 'final' first")
        model = self.service.model()
        adapter = surgvlp.train_adapter(model, cases, prompts, epochs=epochs, cache=self.service.cache())
        stats = {**adapter.describe(), "cases": names, "checkpoint_sha256": model.sha256}
        path = self.service.adapter_path(prompts.name)
        adapter.save(path)
        with atomic_write(self._stats_path(prompts.name), "w", encoding="utf-8") as stream:
            json.dump(stats, stream, indent=2)
        return stats

