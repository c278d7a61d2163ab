"""MLflow's side of the ingest benchmark (api/tests/bench.rs::ingest_throughput).

Starts `mlflow server` on loopback with a SQLite backend store in a temporary folder, creates one
run per trial, and logs the same rows as the Orrery benchmark — two metrics interleaved, `batch`
metrics per `log_batch` call (MLflow's limit is 1000), `clients` threads — then prints one JSON
line: {"rows": N, "seconds": S, "rows_per_s": R}.
"""

import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loss(trial, step):
    # The same curve as the Rust side.
    noise = ((trial * 7919 + step * 104729) % 1000) / 1e4
    return 1.0 + 5.0 / (1.0 + step / 50.0) + noise


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--points-per-trial", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    a = ap.parse_args()

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    work = tempfile.mkdtemp(prefix="orrery-mlflow-")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
         "--default-artifact-root", f"{work}/artifacts"],
        stdout=open(f"{work}/server.log", "w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except Exception:
                if time.time() > deadline or server.poll() is not None:
                    sys.stderr.write(open(f"{work}/server.log").read())
                    raise SystemExit("mlflow server did not start")
                time.sleep(0.5)
        client = MlflowClient(tracking_uri=url)
        exp = client.create_experiment("orrery-bench")
        runs = [client.create_run(exp).info.run_id for _ in range(a.trials)]

        def batches(k):
            pts = []
            for i in range(a.points_per_trial):
                name = "train/loss" if i % 2 == 0 else "eval/loss"
                step = i // 2
                pts.append(Metric(name, loss(k, step), int(1.7e12) + i, step))
            return [pts[j:j + a.batch] for j in range(0, len(pts), a.batch)]

        prepared = [(runs[k], batches(k)) for k in range(a.trials)]

        def client_work(c):
            cl = MlflowClient(tracking_uri=url)
            for run_id, bs in prepared[c::a.clients]:
                for b in bs:
                    cl.log_batch(run_id, metrics=b)

        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(a.clients) as pool:
            list(pool.map(client_work, range(a.clients)))
        seconds = time.time() - started
        stored = sum(len(client.get_metric_history(r, "train/loss")) + len(client.get_metric_history(r, "eval/loss")) for r in runs)
        rows = a.trials * a.points_per_trial
        assert stored == rows, f"MLflow stored {stored} of {rows} rows"
        print(json.dumps({"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
