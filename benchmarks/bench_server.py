"""The MONAI Label app under load: start-up time, and how fast ``/info`` answers while a long timeline is computed.

Starts the real server (stock ``monailabel start_server``) on a synthetic case, measures the time from process start
to the first ``/info`` answer, then ``/info`` latency (median and maximum of N requests) with the server idle, and
again while a timeline of a long video is being computed; prints both and their ratio. Runs the untrained model of
the official size (``surgvlp weights init-untrained --size full``) unless ``--checkpoint`` names real weights.

    python benchmarks/bench_server.py [--duration 600] [--requests 40] [--checkpoint peskavlp]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from monai_server import Server, result  # noqa: E402  (the same launcher the tests use)


def latencies(server: Server, count: int) -> list[float]:
    values = []
    for _ in range(count):
        began = time.monotonic()
        status, _ = server.get("/info/", timeout=60)
        values.append(time.monotonic() - began)
        assert status == 200
        time.sleep(0.05)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds of the long synthetic video (default 600)")
    parser.add_argument("--requests", type=int, default=40, help="/info requests per measurement (default 40)")
    parser.add_argument("--checkpoint", help="a fetched variant (default: untrained weights of the official size)")
    args = parser.parse_args()

    from monailabel.client import MONAILabelClient

    from surgvlp.sample_data import write_sample_case
    from surgvlp.weights import WeightStore

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        conf = {"cache_dir": str(scratch / "cache")}
        if args.checkpoint:
            conf["checkpoint"] = args.checkpoint
        else:
            store = WeightStore(scratch / "weights")
            conf |= {"checkpoint": store.init_untrained("full").name, "weights_dir": str(store.root)}
        case = write_sample_case(scratch / "case", duration=args.duration, seed=0, size=(854, 480), progress=False)
        server = Server(case.directory, scratch / "server", conf | {"threads": "1"})
        try:
            client = MONAILabelClient(server.url)
            while client.info()["surgvlp"]["untrained"] is None:
                time.sleep(0.2)
            idle = latencies(server, args.requests)
            job = result(client.infer("surgvlp_phase", "case.mp4", {"fps": 1})[1])["job"]
            time.sleep(2)
            busy = latencies(server, args.requests)
            state = result(client.infer("surgvlp_phase", "case.mp4", {"job": job["id"]})[1])["job"]
            client.infer("surgvlp_phase", "case.mp4", {"job": job["id"], "cancel": True})
        finally:
            server.stop()
    figures = {
        "start_to_first_info_s": round(server.started_in, 2),
        "idle_info_median_ms": round(1000 * statistics.median(idle), 1),
        "idle_info_max_ms": round(1000 * max(idle), 1),
        "busy_info_median_ms": round(1000 * statistics.median(busy), 1),
        "busy_info_max_ms": round(1000 * max(busy), 1),
        "busy_over_idle_median": round(statistics.median(busy) / statistics.median(idle), 2),
        "long_job_still_running": state["state"] == "running",
        "long_job_progress": [state["done"], state["total"]],
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
