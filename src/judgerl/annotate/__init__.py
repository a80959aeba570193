"""Stage 1, annotation: a gold judge labels prompts + responses (pointwise, pairwise, rubrics, effort variants).

    config.py    AnnotateConfig and the stages a run executes, each with its judge spec
    loaders.py   input items: files (JSONL, JSON, Parquet, HF datasets) and built-in shared-data loaders
    work.py      the resumable SQLite work table (one unit per judge call)
    run.py       run_annotate: drive the stages through the judge, retry, settle
    export.py    write the annotation dataset atomically (rows, manifest, effort-filtered copies)
    dataset.py   the annotation dataset format and its readers (load_annotations, load_manifest, split_of)
"""

from judgerl.annotate.config import AnnotateConfig
from judgerl.annotate.dataset import load_annotations, load_manifest, split_of
from judgerl.annotate.run import check_usable, print_summary, run_annotate

__all__ = ["AnnotateConfig", "load_annotations", "load_manifest", "check_usable", "print_summary", "run_annotate", "split_of"]
