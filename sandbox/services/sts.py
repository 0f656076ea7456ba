"""STS: AssumeRole on the role it names (its trust policy is the IAM gate's); the authorization messages the
sandbox encodes, decoded (moto has no DecodeAuthorizationMessage)."""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

from .. import iam
from .base import Answer, Request, Service


class Sts(Service):
    name = "sts"

    def requested(self, req: Request) -> list[tuple[str, str]]:
        if req.action == "AssumeRole" and req.params.get("RoleArn"):
            return [("sts:AssumeRole", req.params["RoleArn"])]
        return super().requested(req)

    def answer(self, req: Request) -> Answer:
        if req.action == "DecodeAuthorizationMessage":
            return self.decode(req.params)
        return self.moto(req.environ, req.raw)

    def decode(self, params: dict) -> Answer:
        decoded = iam.decode_message(params.get("EncodedMessage", ""))
        if decoded is None:
            return self.error("InvalidAuthorizationMessageException", "The encoded message is not valid.")
        body = (
            '<DecodeAuthorizationMessageResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<DecodeAuthorizationMessageResult><DecodedMessage>{escape(decoded)}</DecodedMessage>"
            f"</DecodeAuthorizationMessageResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            "</ResponseMetadata></DecodeAuthorizationMessageResponse>"
        )
        return "200 OK", [("Content-Type", "text/xml")], body.encode()
