"""API errors: every failure becomes ``{"error": {"code", "message_zh", "message_en"}}`` with an HTTP status."""
from __future__ import annotations

from typing import Any

# Default bilingual messages per HTTP status (used when a handler has nothing more specific to say).
DEFAULT_MESSAGES: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "请求无效，请检查参数。", "Bad request: check the parameters."),
    401: ("token_required", "此操作需要令牌，请点击页面顶部的“登录令牌”填写。",
          "This operation requires the admin token (X-Admin-Token or Authorization: Bearer)."),
    403: ("forbidden", "管理令牌不正确，或请求来自其他网站。", "Wrong admin token, or a cross-site request."),
    404: ("not_found", "找不到请求的内容。", "Not found."),
    405: ("method_not_allowed", "不支持该请求方法。", "Method not allowed."),
    409: ("conflict", "索引正在被其他操作写入，请稍后重试。", "The index is busy with another write; retry later."),
    413: ("too_large", "上传内容过大。", "Upload too large."),
    415: ("unsupported_type", "不支持的文件类型。", "Unsupported file type."),
    500: ("internal_error", "服务器内部错误，请查看服务日志。", "Internal server error; see the server log."),
    503: ("unavailable", "服务暂时不可用，请稍后重试。", "Service temporarily unavailable; retry later."),
}


class ApiError(Exception):
    """An error with an HTTP status and a message in Chinese and English."""

    def __init__(self, status: int, message_zh: str | None = None, message_en: str | None = None,
                 code: str | None = None, extra: dict[str, Any] | None = None):
        default = DEFAULT_MESSAGES.get(status, DEFAULT_MESSAGES[500 if status >= 500 else 400])
        self.status = status
        self.code = code or default[0]
        self.message_zh = message_zh or default[1]
        self.message_en = message_en or default[2]
        self.extra = extra or {}
        super().__init__(f"{self.status} {self.code}: {self.message_en}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        body: dict[str, Any] = {"error": {"code": self.code, "message_zh": self.message_zh,
                                          "message_en": self.message_en}}
        body.update(self.extra)
        return body


def split_bilingual(message: str) -> tuple[str, str]:
    """Split an engine message written as ``中文 / English`` into its two halves (or use it for both)."""
    if " / " in message:
        zh, en = message.split(" / ", 1)
        return zh.strip(), en.strip()
    return message, message
