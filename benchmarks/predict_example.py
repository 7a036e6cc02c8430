"""The README's example of ``python -m astrojax.predict``: the fusion model of configs/fusion.py
on the catalogue built from the recorded archive replies.

    python benchmarks/predict_example.py                        # trains runs/fusion if needed
    python benchmarks/predict_example.py --workdir runs/fusion  # an existing fusion workdir

Serves the recorded NASA Exoplanet Archive (``pscomppars``) and exoplanets.org replies of
tests/data/sources/exoplanets/ on 127.0.0.1 (recorded-format test data: real planets, values
typed from memory and rounded, not data), fetches and builds the catalogue as the data CLI does,
trains configs/fusion.py into ``--workdir`` when it holds no checkpoint, and runs predict with
its defaults (32 Monte Carlo draws, seed 0). Writes ``predict_example.ecsv``, ``.png`` and
``.json`` (the rows, the summary line, the wall times of the machine that ran it) into
``--output-dir``; ``scale`` in the JSON times predict on ``--scale-planets`` rows.
"""

import argparse
import json
import runpy
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "data" / "sources" / "exoplanets"


def build_recorded_catalog(folder: Path) -> Path:
    from pytest_httpserver import HTTPServer

    from astrojax.data.archives import SourceConfig
    from astrojax.data.archives import exoplanets_org as eod
    from astrojax.data.archives import nasa_exoplanet_archive as nea
    from astrojax.data.archives.catalog import build_catalog

    server = HTTPServer()
    server.start()
    try:
        server.expect_request("/sync").respond_with_data(
            (RECORDED / "nasa_pscomppars.vot").read_bytes(), content_type="text/xml")
        server.expect_request("/csv-files/exoplanets.csv").respond_with_data(
            (RECORDED / "exoplanets_org.csv").read_bytes(), content_type="text/csv")
        config = SourceConfig(base_urls={nea.NAME: server.url_for("/"),
                                         eod.NAME: server.url_for("/")},
                              cache_dir=str(folder / "cache"), max_attempts=1)
        nea.fetch(config, folder / "nasa")
        eod.fetch(config, folder / "org")
    finally:
        server.clear()
        server.stop()
    print(build_catalog([folder / "nasa", folder / "org"], folder / "catalog").summary())
    return folder / "catalog"


def time_at_scale(workdir: Path, catalog: Path, planets: int, tmp: Path) -> dict:
    """Wall time of predict (32 draws, model loading and compilation included) on ``planets``
    rows: the catalogue's rows repeated, each copy under a new name."""
    import warnings

    import numpy as np
    from astropy.table import Table, vstack

    from astrojax.predict import predict

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # archive unit strings astropy does not know
        table = Table.read(catalog / "catalog.ecsv")
        copies = []
        for k in range(-(-planets // len(table))):
            copy = table.copy()
            copy["name"] = [f"{name} #{k}" for name in table["name"]]
            copies.append(copy)
        big = vstack(copies)[:planets]
        big["planet_index"] = np.arange(len(big))
        (tmp / "scale").mkdir()
        big.write(tmp / "scale" / "catalog.ecsv", format="ascii.ecsv")
    start = time.perf_counter()
    predict(workdir, tmp / "scale")
    return {"planets": planets, "samples": 32,
            "predict_wall_seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "fusion"))
    parser.add_argument("--steps", type=int, default=None,
                        help="train.steps when training here (default: the config's)")
    parser.add_argument("--output-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--scale-planets", type=int, default=6000,
                        help="also time predict on this many planets (the catalogue's rows "
                             "repeated under new names; about the size of pscomppars); 0: no")
    args = parser.parse_args(argv)

    from astrojax.predict import predict, write

    workdir, out_dir = Path(args.workdir), Path(args.output_dir)
    record: dict = {"workdir": str(workdir), "machine": "shared 2-core CPU (wall times)"}
    if not (workdir / "checkpoints").is_dir():
        from astrojax.train.loop import train_and_evaluate

        cfg = runpy.run_path(str(ROOT / "configs" / "fusion.py"))["get_config"]()
        if args.steps:
            cfg.train.steps = args.steps
        start = time.perf_counter()
        result = train_and_evaluate(cfg, workdir)
        record["trained_here"] = {"config": "configs/fusion.py", "steps": cfg.train.steps,
                                  "wall_seconds": round(time.perf_counter() - start, 1),
                                  "val_auc_habitable": result.eval.get("eval/auc/habitable"),
                                  "val_auc_biosignature":
                                      result.eval.get("eval/auc/biosignature")}
    evals = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
             if "eval/auc/habitable" in line]
    if evals:  # how good the model is on the synthetic val planets, beside its baselines
        record["model_val"] = {k: round(v, 4) for k, v in evals[-1].items()
                               if k == "step" or "auc/" in k}
    with tempfile.TemporaryDirectory() as tmp:
        catalog = build_recorded_catalog(Path(tmp))
        start = time.perf_counter()
        prediction = predict(workdir, catalog)
        record["predict_wall_seconds"] = round(time.perf_counter() - start, 1)
        out, png = write(prediction, out_dir / "predict_example.ecsv")
        if args.scale_planets:
            record["scale"] = time_at_scale(workdir, catalog, args.scale_planets, Path(tmp))
    record["summary"] = prediction.summary(out.relative_to(ROOT) if out.is_relative_to(ROOT)
                                           else out)
    record["model"] = prediction.table.meta["model"]
    keys = ("rank", "name", "status", "modalities", "p_habitable", "p_habitable_std",
            "p_habitable_published", "p_biosignature", "p_biosignature_std",
            "p_biosignature_published", "unknown")
    record["rows"] = [{k: (round(float(r[k]), 4) if k.startswith("p_") else
                           int(r[k]) if k == "rank" else str(r[k])) for k in keys}
                      for r in prediction.predicted]
    (out_dir / "predict_example.json").write_text(json.dumps(record, indent=2) + "\n")
    print(record["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
