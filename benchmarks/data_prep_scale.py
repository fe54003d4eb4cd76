"""Data preparation at MIMIC scale: indexing time and peak memory, and parallel image resizing.

1. Writes MIMIC-sized metadata and split files (377,110 images by default) and a reports zip
   (227,835 studies) in the real formats, then indexes them two ways, each in a fresh process so
   peak memory (max RSS) is its own:
   - baseline: load everything with pandas and read every report into memory, then join;
   - ours: ``data_prep.mimic_cxr`` (streams the CSVs, keeps compact records, sections reports as
     it reads them and keeps only findings/impression of studies with a frontal image).
2. Resizes full-size synthetic chest X-rays (2544 x 3056 JPEG) into the model's frame in one
   process (baseline) and in ``--workers`` processes.

    python benchmarks/data_prep_scale.py                       # MIMIC-sized (takes a few minutes)
    python benchmarks/data_prep_scale.py --images 40000 --studies 24000 --xrays 16
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METADATA_HEADER = (
    "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
    "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
    "PatientOrientationCodeSequence_CodeMeaning"
)
REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___ year old with cough
 
 FINDINGS: 
 
 The heart size is normal.  The lungs are clear.  There is no pleural effusion
 or pneumothorax.  {extra}
 
 IMPRESSION: 
 
 No acute cardiopulmonary process.
"""


def write_release(folder: Path, images: int, studies: int, seed: int) -> None:
    rng = random.Random(seed)
    jpg = folder / "mimic-cxr-jpg"
    jpg.mkdir(parents=True)
    study_ids = [f"5{n:07d}" for n in range(studies)]
    with gzip.open(jpg / "mimic-cxr-2.0.0-metadata.csv.gz", "wt", newline="") as metadata, \
            gzip.open(jpg / "mimic-cxr-2.0.0-split.csv.gz", "wt", newline="") as split:
        metadata.write(METADATA_HEADER + "\n")
        split.write("dicom_id,study_id,subject_id,split\n")
        for n in range(images):
            study = study_ids[n % studies]
            subject = f"1{int(study) % 65000:07d}"
            dicom = "-".join(f"{rng.getrandbits(32):08x}" for _ in range(5))
            view = rng.choice(["PA", "AP", "LATERAL", "LL", ""])
            metadata.write(f"{dicom},{subject},{study},CHEST (PA AND LAT),{view},3056,2544,21800506,"
                           f"80556.875,CHEST (PA AND LAT),postero-anterior,Erect\n")
            part = "test" if int(subject) % 50 == 0 else "validate" if int(subject) % 97 == 0 else "train"
            split.write(f"{dicom},{study},{subject},{part}\n")
    reports = folder / "mimic-cxr-reports"
    reports.mkdir()
    with zipfile.ZipFile(reports / "mimic-cxr-reports.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for study in study_ids:
            subject = f"1{int(study) % 65000:07d}"
            text = REPORT.format(extra=rng.choice(["Stable.", "Mild atelectasis.", ""]))
            archive.writestr(f"files/p{subject[:2]}/p{subject}/s{study}.txt", text)


def measure_baseline(folder: Path) -> dict:
    import pandas as pd

    jpg = folder / "mimic-cxr-jpg"
    metadata = pd.read_csv(jpg / "mimic-cxr-2.0.0-metadata.csv.gz", dtype=str)
    split = pd.read_csv(jpg / "mimic-cxr-2.0.0-split.csv.gz", dtype=str)
    joined = metadata.merge(split[["dicom_id", "split"]], on="dicom_id")
    with zipfile.ZipFile(folder / "mimic-cxr-reports" / "mimic-cxr-reports.zip") as archive:
        texts = {name: archive.read(name).decode() for name in archive.namelist()}
    from data_prep.mimic_sections import report_sections

    sections = {name: report_sections(text) for name, text in texts.items()}
    return {"images": len(joined), "reports": len(sections)}


def measure_ours(folder: Path) -> dict:
    from data_prep import mimic_cxr
    from data_prep.records import SkipLog

    skips = SkipLog()
    index = mimic_cxr.load(folder / "mimic-cxr-jpg", folder / "mimic-cxr-reports", ["PA", "AP"], skips)
    return {"images": len(index.images), "reports": len(index.sections)}


def run_measurement(kind: str, folder: Path) -> dict:
    """Run one measurement in a fresh interpreter; returns its result with seconds and peak MB."""
    code = (
        "import json, resource, sys, time; sys.path.insert(0, sys.argv[1]);"
        "from benchmarks.data_prep_scale import measure_baseline, measure_ours;"
        "start = time.perf_counter();"
        f"result = measure_{kind}(__import__('pathlib').Path(sys.argv[2]));"
        "result['seconds'] = time.perf_counter() - start;"
        "result['peak_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024;"
        "print(json.dumps(result))"
    )
    output = subprocess.run([sys.executable, "-c", code, str(ROOT), str(folder)], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def resize_benchmark(folder: Path, count: int, workers: int) -> tuple[float, float]:
    from PIL import Image

    from data_prep.images import ImageJob, prepare_images

    sources = []
    for n in range(count):
        path = folder / f"xray{n}.jpg"
        Image.effect_noise((2544, 3056), 50).save(path, format="JPEG", quality=95)
        sources.append(path)
    timings = []
    for label, processes in (("serial", 0), ("parallel", workers)):
        jobs = [ImageJob(s, folder / label / s.name, 3136, 262144, 95) for s in sources]
        start = time.perf_counter()
        prepare_images(jobs, processes, description=f"resize ({label})")
        timings.append(time.perf_counter() - start)
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=377_110)
    parser.add_argument("--studies", type=int, default=227_835)
    parser.add_argument("--xrays", type=int, default=32, help="full-size images to resize")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        start = time.perf_counter()
        write_release(folder, args.images, args.studies, args.seed)
        print(f"wrote {args.images:,} metadata rows and {args.studies:,} reports in {time.perf_counter() - start:.0f} s")
        baseline, ours = run_measurement("baseline", folder), run_measurement("ours", folder)
        print(f"\n{'indexing':34s} {'seconds':>9s} {'peak MB':>9s}")
        print(f"{'baseline (pandas, all in memory)':34s} {baseline['seconds']:9.1f} {baseline['peak_mb']:9.0f}")
        print(f"{'ours (streaming index)':34s} {ours['seconds']:9.1f} {ours['peak_mb']:9.0f}")
        print(f"ratio baseline/ours: time {baseline['seconds'] / ours['seconds']:.2f}x, "
              f"memory {baseline['peak_mb'] / ours['peak_mb']:.2f}x; ours indexed {ours['images']:,} images, "
              f"{ours['reports']:,} reports with a frontal image")

        serial, parallel = resize_benchmark(folder, args.xrays, args.workers)
        print(f"\n{'resizing ' + str(args.xrays) + ' images of 2544x3056':34s} {'seconds':>9s} {'img/s':>9s}")
        print(f"{'baseline (1 process)':34s} {serial:9.1f} {args.xrays / serial:9.1f}")
        print(f"{f'ours ({args.workers} processes)':34s} {parallel:9.1f} {args.xrays / parallel:9.1f}")
        print(f"speed-up: {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()
