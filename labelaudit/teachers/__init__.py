"""Teachers: whatever gives a scan per-image probabilities in the label frame (teachers.base).

    load_teachers("runs/a", "csr")                  a `labelaudit train` run (csr/dml/final/folds/snapshots)
    checkpoint_teacher("dml_csr_lapa.pth")          any checkpoint file (ours or the reference's)
    ProbsTeacher("probs/")                          maps written by `labelaudit predict` or any program
    ensemble([a, b])                                the mean of several
"""
from labelaudit.teachers.base import EnsembleTeacher, Teacher, TeacherSet, ensemble
from labelaudit.teachers.network import NetworkTeacher, checkpoint_teacher
from labelaudit.teachers.probs import ProbsError, ProbsTeacher, write_classes, write_map
from labelaudit.teachers.runs import TEACHERS, load_teachers

__all__ = ["TEACHERS", "EnsembleTeacher", "NetworkTeacher", "ProbsError", "ProbsTeacher", "Teacher",
           "TeacherSet", "checkpoint_teacher", "ensemble", "load_teachers", "write_classes",
           "write_map"]


def open_teachers(run_dir, which: str = "auto", *, checkpoints=(), probs=(), device=None,
                  tta: bool = False) -> TeacherSet:
    """The teachers a scan is told about: the checkpoint files and probability folders given
    (their mean when several), else teacher `which` of the training run in `run_dir`."""
    if not checkpoints and not probs:
        return load_teachers(run_dir, which, device, tta)
    members = [checkpoint_teacher(c, device, tta) for c in checkpoints]
    members += [ProbsTeacher(p) for p in probs]
    one = ensemble(members)
    return TeacherSet(one.name, [one])


__all__ += ["open_teachers"]
