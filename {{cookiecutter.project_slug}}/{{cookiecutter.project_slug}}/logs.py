"""Log lines of bounded size.

A visitor controls much of what gets logged (URLs, search terms, headers), and a deep traceback
can be hundreds of KB: one such event can fill a log collector's line limit, be split or dropped,
or cost real money in a log service. Every field is cut in the middle to a few KB (the start and
the end of a traceback are the useful parts), so one event is one JSON line of at most MAX_LINE
bytes.
"""

from pythonjsonlogger.json import JsonFormatter

MAX_LINE = 8192  # bytes per log line, whatever the input
FIELD_LIMITS = (2000, 400, 80)  # characters per field, tightened until the line fits
PRIMITIVES = (bool, int, float, type(None))


def cut(text, limit):
    """`text` with its middle replaced by a marker if it is longer than `limit` characters."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    return f"{text[:head]} [... {len(text) - limit} characters cut ...] {text[-tail:]}"


class BoundedJsonFormatter(JsonFormatter):
    def jsonify_log_record(self, log_data):
        for limit in FIELD_LIMITS:
            bounded = {
                key: value if isinstance(value, PRIMITIVES) else cut(str(value), limit)
                for key, value in log_data.items()
            }
            line = super().jsonify_log_record(bounded)
            if len(line.encode()) <= MAX_LINE:
                return line
        # Many long fields: keep what identifies the event.
        essentials = ("asctime", "levelname", "name", "message")
        return super().jsonify_log_record(
            {key: bounded[key] for key in essentials if key in bounded} | {"cut": True}
        )
