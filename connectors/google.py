"""What the Google connectors (scc, workspace_alertcenter) share: the shape of the error
body every Google JSON API answers with, {"error": {"code", "message", "status"}}.

The two reach Google through different SDKs (google-api-core, googleapiclient), whose
exceptions differ; both read the vendor's answer through this one voice.
"""

from __future__ import annotations

from alertpull.http import ErrorVoice

GOOGLE_ERROR_BODY = ErrorVoice("Google", message_path="error.message", code_path="error.status")
