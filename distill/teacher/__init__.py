"""The teacher (docs/method.md §2): its artifact format, importers, the registry of teacher kinds
and the teachers that produce it."""

from distill.teacher.artifacts import TeacherArtifacts
from distill.teacher.reference import import_reference
from distill.teacher.registry import TEACHERS, TeacherKind, build_teacher, parse_teacher
from distill.teacher.titles import title_teacher

__all__ = ["TEACHERS", "TeacherArtifacts", "TeacherKind", "build_teacher", "import_reference", "parse_teacher",
           "title_teacher"]
