"""Data preparation at MIMIC scale: indexing time and peak memory, and parallel image resizing.

1. Writes MIMIC-sized metadata and split files (377,110 images by default) and a reports zip
   (227,835 studies) in the real formats, then indexes them two ways, each in a fresh process so
   peak memory (max RSS) is its own:
   - baseline: load everything with pandas and read every report into memory, then join;
   - ours: ``data_prep.mimic_cxr`` (streams the CSVs, keeps compact records, sections reports as
     it reads them and keeps only findings/impression of studies with a frontal image).
2. Resizes MIMIC-sized synthetic chest X-rays (2544 x 3056, grey, textured, JPEG quality 95,
   ~1 MB each) into the model's frame: the old path (full decode + bicubic) against ours (JPEG
   draft decoding, ``data_prep.images.decode_into_frame``) on the same files, in one process
   (images per second per core), the pixel difference between the two, ours in ``--workers``
   processes, and the projected time for all of MIMIC-CXR-JPG on 2, 16 and 64 cores.

    python benchmarks/data_prep_scale.py                       # MIMIC-sized (takes a few minutes)
    python benchmarks/data_prep_scale.py --images 40000 --studies 24000 --xrays 16
    python benchmarks/data_prep_scale.py --part images         # the image part only
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
MIMIC_IMAGES = 377_110  # MIMIC-CXR-JPG 2.0.0
FRAME_PIXELS = (3136, 262144)  # min_pixels, max_pixels of recipes/data/build.yaml

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


def full_decode_into_frame(image, frame):
    """The path before draft decoding: decode every pixel, then resize (bicubic) to the frame."""
    from PIL import Image

    image.load()
    return image.convert("L").resize((frame.width, frame.height), Image.Resampling.BICUBIC)


def old_prepare(job) -> None:
    """``prepare_one`` as it was: full decode, resize, write."""
    from PIL import Image

    from rewards.frame import model_frame

    with Image.open(job.source) as image:
        resized = full_decode_into_frame(image, model_frame(*image.size, job.min_pixels, job.max_pixels))
    job.target.parent.mkdir(parents=True, exist_ok=True)
    resized.save(job.target, format="JPEG", quality=job.quality)


def new_prepare_verified_in_full(job) -> None:
    """Ours plus a separate full decode of the source: what verifying the file that way would cost."""
    from PIL import Image

    from data_prep.images import prepare_one

    with Image.open(job.source) as image:
        image.load()
    prepare_one(job)


def write_xrays(folder: Path, count: int, seed: int) -> list[Path]:
    """MIMIC-CXR-JPG-like sources: 2544 x 3056 grey radiographs with texture, JPEG quality 95, ~1 MB
    (the fixtures' ``radiograph`` at full size; pure noise would compress far worse)."""
    import numpy as np

    from data_prep.fixtures.common import radiograph

    sources = []
    for n in range(count):
        path = folder / "sources" / f"xray{n}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = radiograph(random.Random(seed + n), np.random.default_rng(seed + n), 2544, 3056, lateral=n % 5 == 4)
        picture.save(path, format="JPEG", quality=95)
        sources.append(path)
    return sources


def grey_levels(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.int16)


def resized_pixels(source: Path, draft: bool):
    """The frame-sized pixels before the JPEG write: ours (``draft``) or the old full decode."""
    import numpy as np
    from PIL import Image

    from data_prep.images import decode_into_frame
    from rewards.frame import model_frame

    with Image.open(source) as image:
        frame = model_frame(*image.size, *FRAME_PIXELS)
        resized = (decode_into_frame if draft else full_decode_into_frame)(image, frame)
    return np.asarray(resized, dtype=np.int16)


def difference(pairs) -> tuple[float, int]:
    """Mean and max absolute grey-level difference over all pixels of (array, array) pairs."""
    total, pixels, worst = 0.0, 0, 0
    for a, b in pairs:
        absolute = abs(a - b)
        total, pixels, worst = total + float(absolute.sum()), pixels + absolute.size, max(worst, int(absolute.max()))
    return total / pixels, worst


def resize_benchmark(folder: Path, count: int, workers: int, repeats: int, seed: int) -> None:
    from data_prep.images import ImageJob, prepare_images
    from rewards.frame import model_frame

    sources = write_xrays(folder, count, seed)
    frame = model_frame(2544, 3056, *FRAME_PIXELS)
    megabytes = sum(s.stat().st_size for s in sources) / count / 1e6
    runs = iter(range(10**6))

    def jobs() -> list:  # a fresh output folder per run: prepare_one keeps images already written
        target = folder / f"run{next(runs)}"
        return [ImageJob(s, target / s.name, *FRAME_PIXELS, 95) for s in sources]

    paths = {
        "old": lambda batch: [old_prepare(job) for job in batch],
        "ours": lambda batch: prepare_images(batch, 0, description="draft decoding"),
        "verified": lambda batch: [new_prepare_verified_in_full(job) for job in batch],
        "parallel": lambda batch: prepare_images(batch, workers, description=f"{workers} workers"),
    }
    timings: dict[str, list] = {name: [] for name in paths}
    for _ in range(repeats):  # interleaved, so that load from other processes hits every path alike
        for name, function in paths.items():
            # One process: its CPU seconds (other jobs on the machine do not count). Workers: wall time.
            clock = time.perf_counter if name == "parallel" else time.process_time
            batch = jobs()
            start = clock()
            function(batch)
            timings[name].append((clock() - start, [job.target for job in batch]))
    (old_s, old_files), (new_s, new_files), (verified_s, _), (parallel_s, parallel_files) = (
        min(timings[name], key=lambda timing: timing[0]) for name in paths)
    old_pixels = [resized_pixels(source, draft=False) for source in sources]
    mean_difference, max_difference = difference(
        (old, resized_pixels(source, draft=True)) for old, source in zip(old_pixels, sources))
    written_mean, written_max = difference((grey_levels(a), grey_levels(b)) for a, b in zip(old_files, new_files))
    encoding_mean, _ = difference((old, grey_levels(path)) for old, path in zip(old_pixels, old_files))
    identical = all(a.read_bytes() == b.read_bytes() for a, b in zip(new_files, parallel_files))

    print(f"\nresizing {count} X-ray-like JPEGs of 2544x3056 (grey, quality 95, {megabytes:.2f} MB on average) "
          f"into the {frame.width}x{frame.height} frame; fastest of {repeats}; one process: CPU seconds")
    print(f"{'path':46s} {'s/image':>9s} {'img/s/core':>11s} {'ratio':>7s}")
    for label, seconds in (
        ("old: full decode + bicubic (1 process)", old_s),
        ("ours: draft decode + bicubic (1 process)", new_s),
        ("ours + a separate full-decode check", verified_s),
    ):
        print(f"{label:46s} {seconds / count:9.4f} {count / seconds:11.1f} {old_s / seconds:6.2f}x")
    print(f"ours with {workers} worker processes: {count / parallel_s:.1f} img/s "
          f"({new_s / parallel_s:.2f}x one process); output byte-identical to one process: {identical}")
    print(f"pixel difference old vs ours, resized pixels: mean {mean_difference:.3f}, max {max_difference} grey levels "
          "(goal: mean <= 1)")
    print(f"  in the written JPEGs: mean {written_mean:.3f}, max {written_max} (writing at quality 95 alone moves "
          f"the old path's pixels by {encoding_mean:.3f} on average, independently in each file)")
    print(f"\nprojected for MIMIC-CXR-JPG ({MIMIC_IMAGES:,} images), per-core rate x cores "
          "(assumes storage keeps up):")
    print(f"{'cores':>6s} {'old':>14s} {'ours':>14s} {'ours reads':>12s}")
    for cores in (2, 16, 64):
        print(f"{cores:6d} {_duration(MIMIC_IMAGES * old_s / count / cores):>14s} "
              f"{_duration(MIMIC_IMAGES * new_s / count / cores):>14s} {cores * count / new_s * megabytes:>7.0f} MB/s")
    if mean_difference > 1.0:
        raise SystemExit(f"draft decoding moved pixels by {mean_difference:.3f} grey levels on average (limit 1)")
    if not identical:
        raise SystemExit("parallel output differs from one process")


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=MIMIC_IMAGES)
    parser.add_argument("--studies", type=int, default=227_835)
    parser.add_argument("--xrays", type=int, default=16, help="full-size images to resize")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per image path; the fastest is reported")
    parser.add_argument("--part", choices=("all", "index", "images"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        if args.part in ("all", "index"):
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
        if args.part in ("all", "images"):
            resize_benchmark(folder, args.xrays, args.workers, args.repeats, args.seed)


if __name__ == "__main__":
    main()
