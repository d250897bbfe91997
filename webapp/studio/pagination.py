"""The API's pagination (its own module: DRF imports it while loading its settings)."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """?limit=&offset= with bounds: a limit over 500 is 500, an offset past 2**31 a 400 (a number the
    database cannot compare is not a 500)."""
    max_limit = 500
    max_offset = 2**31

    def get_offset(self, request):
        offset = super().get_offset(request)
        if offset > self.max_offset:
            raise ValidationError({"offset": f"must be at most {self.max_offset}"})
        return offset
