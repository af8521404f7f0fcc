"""URL converters. Object ids are 1 to 18 digits, so a huge id is a 404, not a database
overflow."""

from django.urls import register_converter


class ObjectIdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(ObjectIdConverter, "id")
