"""The JSON response class used everywhere: orjson, compact, UTF-8, ending with a newline.

Every JSON body the API answers ends with `\n` (docs/reference.md §8), so that `curl` output
ends its line and line-oriented tools read one answer a line. Bodies built by hand (stored
envelopes, the gateway's errors, inbound answers) add it with `jsonutil.json_body`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_APPEND_NEWLINE)
