"""Teachers: whatever gives a scan per-image probabilities in the label frame (teachers.base).

    load_teachers("runs/a", "csr")                  a `labelaudit train` run (csr/dml/final/folds/snapshots)
    checkpoint_teacher("dml_csr_lapa.pth")          any checkpoint file (ours or the reference's)
    ProbsTeacher("probs/")                          maps written by `labelaudit predict` or any program
    ensemble([a, b])                                the mean of several
    Views(flip=True, scales=(1, 1.25))              a network teacher's test-time views
"""
from labelaudit.predict import AUDIT_VIEWS, Views
from labelaudit.teachers.base import EnsembleTeacher, Teacher, TeacherSet, ensemble
from labelaudit.teachers.network import NetworkTeacher, checkpoint_teacher
from labelaudit.teachers.probs import ProbsError, ProbsTeacher, write_classes, write_map
from labelaudit.teachers.runs import TEACHERS, load_teachers, open_teachers

__all__ = ["AUDIT_VIEWS", "TEACHERS", "EnsembleTeacher", "NetworkTeacher", "ProbsError", "ProbsTeacher", "Teacher",
           "TeacherSet", "Views", "checkpoint_teacher", "ensemble", "load_teachers", "open_teachers",
           "write_classes", "write_map"]

