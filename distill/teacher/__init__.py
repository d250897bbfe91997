"""The teacher (SPEC §2): its artifact format, importers and the teachers that produce it."""

from distill.teacher.artifacts import TeacherArtifacts, import_reference
from distill.teacher.titles import title_teacher

__all__ = ["TeacherArtifacts", "import_reference", "title_teacher"]
