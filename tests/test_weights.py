"""Weights management against a real HTTP server on 127.0.0.1 serving zips made here.

The server can redirect (as the official share links do), ignore range requests, and cut a response short,
so resuming, restarting and every failure path run over a real socket through the real download code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from surgvlp.network.checkpoint import load_network
from surgvlp.cli import main
from surgvlp.errors import SurgVLPError
from surgvlp.network.loading import load_model
from surgvlp.network.untrained import ModelFiles
from surgvlp.weights import (
    MANIFEST_NAME,
    SAM2_MODELS,
    TEXT_MODEL_DIRNAME,
    TEXT_MODEL_URL_ENV,
    VARIANTS,
    WEIGHTS_DIR_ENV,
    WeightStore,
    default_weights_dir,
    fetch,
    fetch_sam2,
    sha256_file,
)

VOCAB = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ngrasper\nhook\n"
CONFIG = {"model_type": "bert", "hidden_size": 768, "vocab_size": 7}
CUT_AT = 3000


# -- the server ---------------------------------------------------------------------------------------


@dataclass
class Route:
    file: Path | None = None
    redirect: str | None = None
    honour_range: bool = True
    cuts: int = 0  # how many of the next answers stop after CUT_AT bytes


@dataclass
class Site:
    """What the server serves, and the log of what it was asked (path, Range header)."""

    base: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def serve(self, path: str, file: Path, **options) -> str:
        self.routes[path] = Route(file=file, **options)
        return self.base + path

    def url(self, path: str) -> str:
        return self.base + path

    def asked(self, path: str) -> list[str | None]:
        return [ranges for asked, ranges in self.requests if asked == path]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        site: Site = self.server.site
        site.requests.append((self.path, self.headers.get("Range")))
        route = site.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        if route.redirect:
            self.send_response(302)
            self.send_header("Location", route.redirect)
            self.end_headers()
            return
        size = route.file.stat().st_size
        start = 0
        ranges = self.headers.get("Range")
        if ranges and route.honour_range:
            start = int(ranges.removeprefix("bytes=").rstrip("-"))
            if start >= size:
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        with open(route.file, "rb") as source:
            source.seek(start)
            if route.cuts:
                route.cuts -= 1
                self.wfile.write(source.read(CUT_AT))
                return
            shutil.copyfileobj(source, self.wfile)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture
def site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.site = Site(base=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.site
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def no_default_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point every default URL at a closed local port, so a test that forgets a URL fails instead of going out;
    the default weights folder is then the one in a throw-away user data folder."""
    for variant in (*VARIANTS.values(), *SAM2_MODELS.values()):
        monkeypatch.setenv(variant.url_env, "http://127.0.0.1:9/not-served")
    monkeypatch.setenv(TEXT_MODEL_URL_ENV, "http://127.0.0.1:9/not-served")
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))


# -- files the server serves ----------------------------------------------------------------------------


def write_checkpoint(path: Path, keys: tuple[str, ...] = ("backbone_img.global_embedder.weight",)) -> Path:
    """A small bare state_dict; official key prefixes unless ``keys`` says otherwise."""
    torch.manual_seed(0)
    torch.save({key: torch.randn(256, 64) for key in keys}, path)
    return path


def write_zip(path: Path, members: dict[str, Path | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content.read_bytes() if isinstance(content, Path) else content)
    return path


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return write_checkpoint(tmp_path / "PeskaVLP.pth")


@pytest.fixture
def text_model_files(tmp_path: Path) -> Path:
    folder = tmp_path / "hub"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "vocab.txt").write_text(VOCAB)
    return folder


def serve_text_model(site: Site, folder: Path) -> str:
    for file in folder.iterdir():
        site.serve(f"/hub/{file.name}", file)
    return site.url("/hub")


@pytest.fixture
def store(tmp_path: Path) -> WeightStore:
    return WeightStore(tmp_path / "weights")


def fetch_from(site: Site, store: WeightStore, zip_path: Path, text_model: Path, **route) -> None:
    site.serve("/peskavlp.zip", zip_path, **route)
    fetch("peskavlp", site.url("/peskavlp.zip"), serve_text_model(site, text_model), store=store)


def leftovers(store: WeightStore) -> set[str]:
    return {path.name for path in store.root.rglob("*")} if store.root.exists() else set()


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("surgvlp weights: error: ") and "\n" not in err, err
    return err


# -- fetching -----------------------------------------------------------------------------------------


def test_fetch_follows_redirect_installs_checkpoint_and_text_model(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path, tmp_path: Path
) -> None:
    zip_url = site.serve("/files/peskavlp.zip", write_zip(tmp_path / "official.zip", {"PeskaVLP.pth": checkpoint}))
    site.routes["/f/65a2/?dl=1"] = Route(redirect=zip_url)

    entry = fetch("peskavlp", site.url("/f/65a2/?dl=1"), serve_text_model(site, text_model_files), store=store)

    assert entry.path == store.root / "peskavlp.pth"
    assert entry.sha256 == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert entry.source == site.url("/f/65a2/?dl=1") and not entry.untrained
    manifest = json.loads((store.root / MANIFEST_NAME).read_text())
    assert manifest["entries"]["peskavlp"]["file"] == "peskavlp.pth"
    assert manifest["entries"][f"{TEXT_MODEL_DIRNAME}/vocab.txt"]["file"] == f"{TEXT_MODEL_DIRNAME}/vocab.txt"
    folder = store.text_model_dir()
    assert (folder / "vocab.txt").read_text() == VOCAB
    # The hub has no tokenizer_config.json; the written one keeps upstream's lower-casing.
    assert json.loads((folder / "tokenizer_config.json").read_text())["do_lower_case"] is True
    assert leftovers(store) == {MANIFEST_NAME, "peskavlp.pth", TEXT_MODEL_DIRNAME, "config.json", "vocab.txt", "tokenizer_config.json"}
    assert store.resolve("peskavlp") == entry


def test_cli_fetch_takes_the_text_model_mirror_from_the_environment_and_keeps_its_tokenizer_config(
    site: Site,
    checkpoint: Path,
    text_model_files: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (text_model_files / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    monkeypatch.setenv(TEXT_MODEL_URL_ENV, serve_text_model(site, text_model_files))
    zip_url = site.serve("/hecvl.zip", write_zip(tmp_path / "a.zip", {"x.pth": checkpoint}))
    folder = tmp_path / "weights"
    assert main(["weights", "fetch", "hecvl", "--url", zip_url, "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"hecvl: {folder / 'hecvl.pth'} (SHA-256 {sha256_file(checkpoint)[:12]}, 65.6 KiB)",
        f"text model: {folder / TEXT_MODEL_DIRNAME}",
    ]
    assert json.loads((folder / TEXT_MODEL_DIRNAME / "tokenizer_config.json").read_text()) == {"do_lower_case": False}


def test_fetch_accepts_a_mirror_serving_the_bare_checkpoint(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path
) -> None:
    fetch_from(site, store, checkpoint, text_model_files)
    assert store.resolve("peskavlp").sha256 == sha256_file(checkpoint)


def test_fetch_resumes_a_cut_download_with_a_range_request(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path, tmp_path: Path
) -> None:
    fetch_from(site, store, write_zip(tmp_path / "a.zip", {"PeskaVLP.pth": checkpoint}), text_model_files, cuts=1)
    assert site.asked("/peskavlp.zip") == [None, f"bytes={CUT_AT}-"]
    assert store.resolve("peskavlp").sha256 == sha256_file(checkpoint)


def test_fetch_restarts_when_the_server_ignores_ranges(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path, tmp_path: Path
) -> None:
    fetch_from(
        site, store, write_zip(tmp_path / "a.zip", {"PeskaVLP.pth": checkpoint}), text_model_files, cuts=1, honour_range=False
    )
    assert site.asked("/peskavlp.zip") == [None, f"bytes={CUT_AT}-"]
    assert store.resolve("peskavlp").sha256 == sha256_file(checkpoint)


def test_a_download_cut_every_time_is_kept_and_resumed_by_the_next_run(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path, tmp_path: Path
) -> None:
    archive = write_zip(tmp_path / "a.zip", {"PeskaVLP.pth": checkpoint})
    with pytest.raises(SurgVLPError, match="cut 3 times.*run the same command again to resume"):
        fetch_from(site, store, archive, text_model_files, cuts=3)
    assert (store.root / "peskavlp.zip.part").stat().st_size == 3 * CUT_AT

    fetch_from(site, store, archive, text_model_files)
    assert site.asked("/peskavlp.zip")[-1] == f"bytes={3 * CUT_AT}-"
    assert store.resolve("peskavlp").sha256 == sha256_file(checkpoint)
    assert "peskavlp.zip.part" not in leftovers(store)


def test_fetch_skips_an_intact_checkpoint_and_repairs_an_altered_one(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path, tmp_path: Path
) -> None:
    archive = write_zip(tmp_path / "a.zip", {"PeskaVLP.pth": checkpoint})
    fetch_from(site, store, archive, text_model_files)
    fetch_from(site, store, archive, text_model_files)
    assert len(site.asked("/peskavlp.zip")) == 1
    assert len(site.asked("/hub/vocab.txt")) == 1

    with open(store.root / "peskavlp.pth", "ab") as file:
        file.write(b"\0")
    with pytest.raises(SurgVLPError) as error:
        store.resolve("peskavlp")
    message = str(error.value)
    assert sha256_file(checkpoint) in message and sha256_file(store.root / "peskavlp.pth") in message
    # Fetched from a mirror: the repair command fetches from that mirror again.
    assert f"`surgvlp weights fetch peskavlp --url {site.url('/peskavlp.zip')} --dir {store.root}`" in message

    fetch_from(site, store, archive, text_model_files)
    assert len(site.asked("/peskavlp.zip")) == 2
    assert store.resolve("peskavlp").sha256 == sha256_file(checkpoint)


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"README.txt": b"no weights here"}, "holds no .pth checkpoint (it contains README.txt)"),
        ({"a/hecvl.pth": "ckpt", "b/peskavlp.pth": "ckpt"}, "holds several checkpoints (a/hecvl.pth, b/peskavlp.pth)"),
    ],
)
def test_a_zip_without_exactly_one_checkpoint_is_refused(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path, tmp_path: Path, members: dict, expected: str
) -> None:
    members = {name: checkpoint if content == "ckpt" else content for name, content in members.items()}
    with pytest.raises(SurgVLPError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        fetch_from(site, store, write_zip(tmp_path / "a.zip", members), text_model_files)
    assert leftovers(store) == set()


def test_a_truncated_zip_leaves_nothing_behind(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path, tmp_path: Path
) -> None:
    whole = write_zip(tmp_path / "a.zip", {"PeskaVLP.pth": checkpoint}).read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SurgVLPError, match="truncated or damaged zip"):
        fetch_from(site, store, truncated, text_model_files)
    assert leftovers(store) == set()


def test_a_corrupted_member_fails_its_crc_check(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path, tmp_path: Path
) -> None:
    data = bytearray(write_zip(tmp_path / "a.zip", {"PeskaVLP.pth": checkpoint}).read_bytes())
    data[data.find(checkpoint.read_bytes()) + 500] ^= 0xFF
    corrupted = tmp_path / "corrupted.zip"
    corrupted.write_bytes(bytes(data))
    with pytest.raises(SurgVLPError, match="damaged.*CRC"):
        fetch_from(site, store, corrupted, text_model_files)
    assert leftovers(store) == set()


def test_a_web_page_instead_of_the_zip_is_named_as_such(
    site: Site, store: WeightStore, text_model_files: Path, tmp_path: Path
) -> None:
    page = tmp_path / "login.html"
    page.write_text("<!DOCTYPE html><html><body>Please log in</body></html>")
    with pytest.raises(SurgVLPError, match="is a web page, not a zip archive"):
        fetch_from(site, store, page, text_model_files)
    assert leftovers(store) == set()


def test_a_zip_holding_a_foreign_checkpoint_names_the_member(
    site: Site, store: WeightStore, text_model_files: Path, tmp_path: Path
) -> None:
    resnet = write_checkpoint(tmp_path / "resnet.pth", keys=("conv1.weight", "fc.weight"))
    archive = write_zip(tmp_path / "a.zip", {"PeskaVLP.pth": resnet})
    with pytest.raises(SurgVLPError, match=r"PeskaVLP\.pth \(in .*peskavlp\.zip\).*torchvision ResNet") as error:
        fetch_from(site, store, archive, text_model_files)
    assert ".tmp" not in str(error.value)
    assert leftovers(store) == set()


def test_http_errors_and_unreachable_servers_are_one_line(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(tmp_path / "weights")
    assert main(["weights", "fetch", "hecvl", "--url", site.url("/gone.zip"), "--dir", folder]) == 2
    message = one_line_error(capsys)
    assert f"{site.url('/gone.zip')} answered HTTP 404 Not Found; to use a mirror pass --url or set SURGVLP_HECVL_URL" in message
    # The autouse fixture points $SURGVLP_HECVL_URL at a closed port.
    assert main(["weights", "fetch", "hecvl", "--dir", folder]) == 2
    assert "cannot reach http://127.0.0.1:9/not-served" in one_line_error(capsys)
    assert not list(Path(folder).glob("*.part"))


def test_a_text_model_page_that_is_not_a_vocabulary_is_refused(
    site: Site, store: WeightStore, checkpoint: Path, text_model_files: Path, tmp_path: Path
) -> None:
    (text_model_files / "vocab.txt").write_text("<html>rate limited</html>")
    with pytest.raises(SurgVLPError, match=r"vocab.txt from http://127.0.0.1:\d+/hub/vocab.txt is not a BERT vocabulary"):
        fetch_from(site, store, write_zip(tmp_path / "a.zip", {"x.pth": checkpoint}), text_model_files)
    assert not (store.root / TEXT_MODEL_DIRNAME / "vocab.txt").exists()
    with pytest.raises(SurgVLPError, match=f"`surgvlp weights fetch peskavlp --dir {store.root}`"):
        store.text_model_dir()


def test_fetched_untrained_model_loads_through_the_real_loader(
    site: Site, store: WeightStore, tiny_model: ModelFiles, tmp_path: Path
) -> None:
    archive = write_zip(tmp_path / "surgvlp.zip", {"SurgVLP/surgvlp.pth": tiny_model.checkpoint})
    site.serve("/surgvlp.zip", archive)
    fetch("surgvlp", site.url("/surgvlp.zip"), serve_text_model(site, tiny_model.text_model_dir), store=store)
    model, tokenizer = load_network(store.resolve("surgvlp").path, store.text_model_dir())
    assert model.encode_text(**tokenizer(["I use hook to dissect it"])).shape == (1, 768)


# -- the store ----------------------------------------------------------------------------------------


def test_default_weights_dir_is_in_the_user_data_folder_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Never beside the installed code: a site-packages or read-only install keeps its weights in the same place."""
    assert default_weights_dir() == tmp_path / "user-data" / "surgvlp" / "weights"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_weights_dir() == Path.home() / ".local" / "share" / "surgvlp" / "weights"
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    assert default_weights_dir() == tmp_path
    assert WeightStore().root == tmp_path


def test_missing_weights_name_the_command_that_fixes_them(store: WeightStore) -> None:
    with pytest.raises(SurgVLPError, match=f"no HecVL weights in {store.root}: run `surgvlp weights fetch hecvl --dir"):
        store.resolve("hecvl")
    with pytest.raises(SurgVLPError, match="surgvlp weights import"):
        store.resolve("hecvl")
    with pytest.raises(SurgVLPError, match="is neither a file nor a recorded name"):
        store.resolve("no-such.pth")
    with pytest.raises(SurgVLPError, match=r"no config.json, vocab.txt\): run `surgvlp weights fetch peskavlp"):
        store.text_model_dir()


def test_a_copied_checkpoint_keeps_its_recorded_provenance(store: WeightStore, checkpoint: Path, tmp_path: Path) -> None:
    recorded = store.record("untrained", checkpoint, source="untrained", untrained=True)
    assert recorded.path == checkpoint  # outside the store: kept where it is, recorded by absolute path
    copy = shutil.copy(checkpoint, tmp_path / "copy.pth")
    entry = store.resolve(Path(copy))
    assert (entry.name, entry.untrained, entry.path) == ("untrained", True, Path(copy))

    other = write_checkpoint(tmp_path / "other.pth", keys=("backbone_img.global_embedder.bias",))
    entry = store.resolve(str(other))
    assert (entry.name, entry.untrained, entry.recorded_at) == ("other", False, None)


def test_a_recorded_untrained_model_loads_with_its_own_text_model(store: WeightStore, tiny_model: ModelFiles) -> None:
    store.record("untrained", tiny_model.checkpoint, source="untrained", untrained=True)
    entry = store.resolve("untrained")
    assert store.text_model_dir_for(entry) == tiny_model.text_model_dir
    with pytest.raises(SurgVLPError, match="untrained"):
        load_model("untrained", store=store)
    loaded = load_model("untrained", store=store, allow_untrained=True, device="cpu")
    assert (loaded.name, loaded.sha256, loaded.untrained) == ("untrained", sha256_file(tiny_model.checkpoint), True)


def test_a_checkpoint_without_a_text_model_beside_it_uses_the_stores(store: WeightStore, checkpoint: Path) -> None:
    entry = store.resolve(checkpoint)
    with pytest.raises(SurgVLPError, match="the text model emilyalsentzer/Bio_ClinicalBERT is not in"):
        store.text_model_dir_for(entry)


def test_a_damaged_manifest_is_a_one_line_error(store: WeightStore) -> None:
    store.root.mkdir()
    store.manifest_path.write_text("{not json")
    with pytest.raises(SurgVLPError, match=f"weights manifest {store.manifest_path} is unreadable"):
        store.entries()


# -- import, list and verify through the CLI ----------------------------------------------------------


def test_import_guesses_the_variant_and_list_shows_it(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "weights"
    assert main(["weights", "import", str(checkpoint), "--dir", str(folder)]) == 0
    assert "peskavlp: " in capsys.readouterr().out
    assert (folder / "peskavlp.pth").read_bytes() == checkpoint.read_bytes()

    assert main(["weights", "list", "--dir", str(folder)]) == 0
    header, row = capsys.readouterr().out.splitlines()[1:]
    assert header.split() == ["NAME", "SHA-256", "SIZE", "UNTRAINED", "SOURCE"]
    assert row.split()[:2] == ["peskavlp", sha256_file(checkpoint)[:12]]
    assert row.split()[-1] == f"import:{checkpoint.resolve()}"


def test_import_of_a_zip_with_an_explicit_name(tmp_path: Path, checkpoint: Path) -> None:
    archive = write_zip(tmp_path / "download.zip", {"weights/model.pth": checkpoint})
    assert main(["weights", "import", str(archive), "--name", "PeskaVLP-Site-A", "--dir", str(tmp_path / "w")]) == 0
    entry = WeightStore(tmp_path / "w").resolve("peskavlp-site-a")
    assert entry.sha256 == sha256_file(checkpoint) and entry.source == f"import:{archive.resolve()}"


@pytest.mark.parametrize(
    ("file_name", "arguments", "expected"),
    [
        ("model.pth", [], "cannot tell from the name 'model.pth' which model it holds; add --name"),
        ("peskavlp.pth", ["--name", "../x"], "weights name '../x' is not usable as a file name"),
        ("missing.pth", [], "missing.pth does not exist"),
    ],
)
def test_import_refusals_are_one_line(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str], file_name: str, arguments: list[str], expected: str
) -> None:
    if file_name != "missing.pth":
        shutil.copy(checkpoint, tmp_path / file_name)
    assert main(["weights", "import", str(tmp_path / file_name), *arguments, "--dir", str(tmp_path / "w")]) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "w").exists()


def test_an_unwritable_weights_folder_is_a_one_line_error(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert main(["weights", "import", str(checkpoint), "--dir", str(not_a_folder / "w")]) == 2
    error = one_line_error(capsys)
    assert f"cannot write {not_a_folder / 'w'}" in error and "pass --dir or set SURGVLP_WEIGHTS_DIR" in error


def test_import_refuses_a_file_that_is_not_an_official_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resnet = write_checkpoint(tmp_path / "hecvl.pth", keys=("conv1.weight", "fc.weight"))
    assert main(["weights", "import", str(resnet), "--dir", str(tmp_path / "w")]) == 2
    assert "torchvision ResNet" in one_line_error(capsys)
    assert not (tmp_path / "w" / "hecvl.pth").exists()


def test_import_text_model_folder_writes_the_missing_tokenizer_config(
    tmp_path: Path, tiny_model: ModelFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "w"
    assert main(["weights", "import", "--text-model", str(tiny_model.text_model_dir), "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == f"text model: {folder / TEXT_MODEL_DIRNAME}"
    store = WeightStore(folder)
    assert {entry.name for entry in store.entries()} == {
        f"{TEXT_MODEL_DIRNAME}/{name}" for name in ("config.json", "vocab.txt", "tokenizer_config.json")
    }
    assert (folder / TEXT_MODEL_DIRNAME / "vocab.txt").read_bytes() == (tiny_model.text_model_dir / "vocab.txt").read_bytes()

    assert main(["weights", "import", "--text-model", str(tmp_path), "--dir", str(folder)]) == 2
    assert "is not a Bio_ClinicalBERT folder: it has no config.json, vocab.txt" in one_line_error(capsys)


def test_verify_reports_each_file_and_fails_on_an_altered_one(
    tmp_path: Path, checkpoint: Path, text_model_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "w"
    assert main(["weights", "verify", "--dir", str(folder)]) == 0
    assert main(["weights", "import", str(checkpoint), "--dir", str(folder)]) == 0
    assert main(["weights", "import", "--text-model", str(text_model_files), "--dir", str(folder)]) == 0
    capsys.readouterr()
    assert main(["weights", "verify", "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.count("ok      ") == 4

    (folder / TEXT_MODEL_DIRNAME / "vocab.txt").write_text(VOCAB + "scissors\n")
    assert main(["weights", "verify", "--dir", str(folder)]) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and f"{TEXT_MODEL_DIRNAME}/vocab.txt" in failed[0]
    assert f"`surgvlp weights import --text-model {text_model_files} --dir {folder}`" in failed[0]


def test_verify_hashes_the_text_model_of_an_untrained_model_and_flags_unrecorded_files(
    tmp_path: Path, text_model_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "w"
    assert main(["weights", "init-untrained", "--dir", str(folder)]) == 0
    capsys.readouterr()
    assert main(["weights", "verify", "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.split() == [
        "ok", "untrained-tiny", "ok", "untrained-tiny/text_model/config.json", "ok", "untrained-tiny/text_model/vocab.txt",
    ]

    store = WeightStore(folder)
    own = folder / "untrained-tiny" / "text_model"
    (own / "vocab.txt").write_text((own / "vocab.txt").read_text() + "scissors\n")
    with pytest.raises(SurgVLPError, match="is not the untrained-tiny/text_model/vocab.txt file that was recorded"):
        store.text_model_dir_for(store.resolve("untrained-tiny"))  # every load checks it, not only verify
    (own / "special_tokens_map.json").write_text("{}")
    shutil.copytree(text_model_files, folder / TEXT_MODEL_DIRNAME)  # copied in by hand, never imported
    assert main(["weights", "verify", "--dir", str(folder)]) == 1
    failed = sorted(line for line in capsys.readouterr().out.splitlines() if line.startswith("FAILED"))
    assert [line.split(":")[0] for line in failed] == [
        f"FAILED  {TEXT_MODEL_DIRNAME}/config.json",
        f"FAILED  {TEXT_MODEL_DIRNAME}/vocab.txt",
        "FAILED  untrained-tiny/text_model/special_tokens_map.json",
        "FAILED  untrained-tiny/text_model/vocab.txt",
    ]
    assert f"is not recorded in the manifest, so it cannot be verified; import the folder with `surgvlp weights import --text-model {folder / TEXT_MODEL_DIRNAME} --dir {folder}`" in failed[0]
    assert "it belongs to untrained-tiny" in failed[2]


# -- SAM2 trackers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam2_hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny SAM2 in the transformers layout, as the hub folder serves it."""
    from surgvlp.segmentation.untrained_sam2 import write_untrained_sam2

    return write_untrained_sam2(tmp_path_factory.mktemp("hub") / "sam2.1-hiera-tiny")


def serve_sam2(site: Site, folder: Path, **route) -> str:
    site.serve("/sam2/config.json", folder / "config.json")
    site.serve("/sam2/model.safetensors", folder / "model.safetensors", **route)
    return site.url("/sam2")


def test_fetch_sam2_records_both_files_and_loads_through_the_real_loader(
    site: Site, store: WeightStore, sam2_hub: Path, one_torch_thread: None
) -> None:
    from surgvlp.segmentation.tracking import load_sam2

    entries = fetch_sam2("sam2-tiny", serve_sam2(site, sam2_hub, cuts=1), store=store)
    assert [entry.name for entry in entries] == ["sam2-tiny/config.json", "sam2-tiny/model.safetensors"]
    assert site.asked("/sam2/model.safetensors") == [None, f"bytes={CUT_AT}-"]  # a cut download resumed
    for entry in entries:
        assert entry.path == store.root / entry.name and entry.sha256 == sha256_file(sam2_hub / entry.path.name)
    assert entries[1].untrained and entries[1].source == site.url("/sam2/model.safetensors")
    assert leftovers(store) == {MANIFEST_NAME, "sam2-tiny", "config.json", "model.safetensors"}

    tracker = load_sam2("sam2-tiny", store=store, device="cpu", allow_untrained=True)
    assert tracker.describe()["model_sha256"] == entries[1].sha256 and tracker.untrained and tracker.image_size == 256
    with pytest.raises(SurgVLPError, match="untrained"):
        load_sam2("sam2-tiny", store=store, device="cpu")

    fetch_sam2("sam2-tiny", site.url("/sam2"), store=store)
    assert len(site.asked("/sam2/model.safetensors")) == 2  # intact: not fetched again
    with open(entries[1].path, "ab") as file:
        file.write(b"\0")
    with pytest.raises(SurgVLPError, match=f"fetch it again with `surgvlp weights fetch sam2-tiny --url {site.url('/sam2')}"):
        store.sam2_folder("sam2-tiny")
    fetch_sam2("sam2-tiny", site.url("/sam2"), store=store)
    assert store.sam2_folder("sam2-tiny").sha256 == sha256_file(sam2_hub / "model.safetensors")


def test_a_web_page_instead_of_the_sam2_weights_is_refused(
    site: Site, store: WeightStore, sam2_hub: Path, tmp_path: Path
) -> None:
    page = tmp_path / "login.html"
    page.write_text("<html><body>Sign in</body></html>")
    site.serve("/sam2/config.json", sam2_hub / "config.json")
    site.serve("/sam2/model.safetensors", page)
    with pytest.raises(SurgVLPError, match="model.safetensors from .* is not a safetensors file"):
        fetch_sam2("sam2-small", site.url("/sam2"), store=store)
    assert not (store.root / "sam2-small" / "model.safetensors").exists()
    assert {entry.name for entry in store.entries()} == {"sam2-small/config.json"}


def test_cli_imports_a_copied_sam2_folder_and_verify_checks_it(
    tmp_path: Path, sam2_hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "w"
    assert main(["weights", "import", "--sam2", str(sam2_hub), "--dir", str(folder)]) == 0  # the name from "hiera-tiny"
    printed = capsys.readouterr().out
    assert "sam2-tiny/model.safetensors: " in printed and "--sam2 sam2-tiny" in printed
    assert main(["weights", "verify", "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.split() == ["ok", "sam2-tiny/config.json", "ok", "sam2-tiny/model.safetensors"]

    (folder / "sam2-tiny" / "config.json").write_text('{"model_type": "sam2_video"}')
    assert main(["weights", "verify", "--dir", str(folder)]) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and f"`surgvlp weights import --sam2 {sam2_hub} --name sam2-tiny --dir {folder}`" in failed[0]

    assert main(["weights", "import", "--sam2", str(tmp_path), "--dir", str(folder)]) == 2
    assert "lacks config.json, model.safetensors" in one_line_error(capsys)
    copy = shutil.copytree(sam2_hub, tmp_path / "copied")
    assert main(["weights", "import", "--sam2", str(copy), "--dir", str(folder)]) == 2
    assert "cannot tell from the folder name 'copied' which SAM2 model it holds; add --name" in one_line_error(capsys)
    (copy / "config.json").write_text('{"model_type": "bert"}')
    assert main(["weights", "import", "--sam2", str(copy), "--name", "sam2-site", "--dir", str(folder)]) == 2
    assert "is not a SAM2 configuration" in one_line_error(capsys)


def test_cli_fetch_of_a_sam2_model_refuses_a_text_model_mirror(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "fetch", "sam2-small", "--text-model-url", "http://127.0.0.1:9/x", "--dir", str(tmp_path)]) == 2
    assert "--text-model-url applies to the SurgVLP variants" in one_line_error(capsys)
