"""Prompt sets: the built-in data is verbatim, user files load, and every bad file gets a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from surgvlp.errors import SurgVLPError
from surgvlp.recognition.prompts import PromptClass, PromptSet, builtin_prompt_sets, load_prompt_set

# DESIGN.md section 3, character for character (two Cholec80 prompts end with a space).
CHOLEC80_PROMPTS = [
    "In preparation phase I insert trocars to patient abdomen cavity",
    "In calot triangle dissection phase I use grasper to hold gallbladder and use hook to expose the hepatic "
    "triangle area and cystic duct and cystic artery",
    "In clip and cut phase I use clipper to clip the cystic duct and artery then use scissor to cut them",
    "In dissection phase I use the hook to dissect the connective tissue between gallbladder and liver ",
    "In packaging phase I put the gallbladder into the specimen bag ",
    "In clean and coagulation phase I use suction and irrigation to clear the surgical field and coagulate "
    "bleeding vessels",
    "In retraction phase I grasp the specimen bag and remove it from trocar",
]
AUTOLAPARO_PROMPTS = [
    "I use grasper to grasp and explore the field",
    "I divide ligament and peritoneum",
    "I divide uterine vessels and ligament",
    "I use the dissecting hook to transect the vagina",
    "I remove the specimen bag and uterus",
    "I am suture the tissue",
    "Washing",
]
TOOL_PROMPTS = [
    "I use grasper or cautery forcep to grasp it",
    "I use bipolar to coagulate and clean the bleeding",
    "I use hook to dissect it",
    "I use scissor",
    "I use clipper to clip it",
    "I use irrigator to suck it",
    "I use specimenbag to wrap it",
]


def test_builtin_sets_are_listed() -> None:
    assert builtin_prompt_sets() == ["autolaparo", "cholec80", "cholec80-tools", "gastric-bypass"]


def test_cholec80_is_verbatim_with_annotation_class_names() -> None:
    prompt_set = load_prompt_set("cholec80")
    assert prompt_set.all_prompts() == CHOLEC80_PROMPTS
    assert prompt_set.class_names == [
        "Preparation", "CalotTriangleDissection", "ClippingCutting", "GallbladderDissection",
        "GallbladderPackaging", "CleaningCoagulation", "GallbladderRetraction",
    ]
    assert prompt_set.task == "phase" and prompt_set.expected_order() == list(range(7))
    assert all(duration > 0 for duration in prompt_set.typical_durations())


def test_autolaparo_and_tools_are_verbatim() -> None:
    autolaparo = load_prompt_set("autolaparo")
    assert autolaparo.all_prompts() == AUTOLAPARO_PROMPTS
    assert autolaparo.class_names[1] == "Dividing Ligament and Peritoneum"
    tools = load_prompt_set("cholec80-tools")
    assert tools.all_prompts() == TOOL_PROMPTS
    assert tools.task == "tool" and tools.expected_order() is None
    assert tools.class_names == ["Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag"]


def test_gastric_bypass_keeps_two_classes_with_one_prompt() -> None:
    prompt_set = load_prompt_set("gastric-bypass")
    assert len(prompt_set.classes) == 11
    by_name = {entry.name: entry.prompts for entry in prompt_set.classes}
    shared = ("I expose between the alimentary limb and the transverse colon and close it with sutures",)
    assert by_name["Petersen space closure"] == by_name["Jejunojejunal anastomosis"] == shared
    assert by_name["Disassembling"] == ("I remove the instruments, retractor, ports, and camera",)


def test_class_embeddings_average_normalised_prompts() -> None:
    prompt_set = PromptSet("pair", "phase", [PromptClass("a", ("x", "y")), PromptClass("b", ("z",))])
    embeddings = prompt_set.class_embeddings(np.array([[3.0, 4.0], [0.0, 2.0], [5.0, 0.0]]))
    mean = np.array([0.3, 0.9])  # (0.6, 0.8) and (0, 1) averaged
    np.testing.assert_allclose(embeddings, [mean / np.linalg.norm(mean), [1.0, 0.0]])
    with pytest.raises(ValueError):
        prompt_set.class_embeddings(np.ones((2, 2)))


USER_SET = {
    "task": "phase",
    "order": ["closing", "opening"],
    "classes": [
        {"name": "opening", "prompts": ["I open the abdomen", "I insert trocars"], "typical_duration": 90},
        {"name": "closing", "prompts": ["I close the wound"]},
    ],
}


def test_user_yaml_and_json_load_alike(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(USER_SET))
    (tmp_path / "mine.json").write_text(json.dumps(USER_SET))
    from_yaml = load_prompt_set(tmp_path / "mine.yaml")
    assert from_yaml == load_prompt_set(str(tmp_path / "mine.json"))
    assert from_yaml.name == "mine"
    assert from_yaml.ordered and from_yaml.expected_order() == [1, 0]
    assert from_yaml.typical_durations() == [90.0, None]
    assert from_yaml.all_prompts() == ["I open the abdomen", "I insert trocars", "I close the wound"]


def test_listed_order_is_the_default_order(tmp_path: Path) -> None:
    path = tmp_path / "listed.yaml"
    path.write_text(yaml.safe_dump({"ordered": True, "classes": USER_SET["classes"]}))
    assert load_prompt_set(path).expected_order() == [0, 1]


def test_to_dict_round_trips() -> None:
    for name in builtin_prompt_sets():
        prompt_set = load_prompt_set(name)
        assert PromptSet.from_dict(prompt_set.to_dict(), "copy") == prompt_set
    explicit = PromptSet.from_dict(USER_SET, "user", default_name="user")
    assert PromptSet.from_dict(explicit.to_dict(), "copy") == explicit


def _classes(*names: str) -> list[dict]:
    return [{"name": name, "prompts": [f"I see {name}"]} for name in names]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("classes: []\n", "the prompt set is empty"),
        ("", "the prompt set is empty"),
        (yaml.safe_dump({"classes": [{"name": "a", "prompts": ["ok", "   "]}]}), "empty prompt"),
        (yaml.safe_dump({"classes": [{"name": "a", "prompts": []}]}), "'prompts' must be a non-empty list"),
        ("classes: [{name: a, prompts: [yes]}]\n", "prompt True is not a text; put it in quotes"),
        (yaml.safe_dump({"classes": _classes("a", "b", "a")}), "class 'a' is listed twice"),
        (yaml.safe_dump({"clases": _classes("a")}), "unknown key 'clases'"),
        (yaml.safe_dump({"classes": [{"name": "a", "prompt": ["x"]}]}), "unknown key 'prompt'"),
        (yaml.safe_dump({"task": "segmentation", "classes": _classes("a")}), "'task' must be one of phase, tool"),
        (yaml.safe_dump({"order": ["a", "c"], "classes": _classes("a", "b")}), "'order' names 'c'"),
        (yaml.safe_dump({"order": ["a"], "classes": _classes("a", "b")}), "missing b"),
        (yaml.safe_dump({"ordered": False, "order": ["a"], "classes": _classes("a")}), "'ordered' is false"),
        (yaml.safe_dump({"classes": [{"name": "a", "prompts": ["x"], "typical_duration": -3}]}), "positive number"),
        ("classes: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_prompt_sets_give_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(SurgVLPError) as error:
        load_prompt_set(path)
    assert message in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_unreadable_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(SurgVLPError, match="neither a built-in set .*cholec80.* nor an existing file"):
        load_prompt_set(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00classes")
    with pytest.raises(SurgVLPError, match="cannot read the prompt set"):
        load_prompt_set(binary)
    text = tmp_path / "phases.txt"
    text.write_text("a\nb\n")
    with pytest.raises(SurgVLPError, match=r"must end in \.yaml, \.yml, \.json"):
        load_prompt_set(text)
    broken = tmp_path / "broken.json"
    broken.write_text('{"classes": [}')
    with pytest.raises(SurgVLPError, match="not valid JSON"):
        load_prompt_set(broken)
