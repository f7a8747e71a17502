"""
A subscriber for the events of the GitHub webhook (docs/bridge-webhook.rst):

    python -m wampweb run --config listings/bridge_webhook.toml --app listings.bridge_github:setup
"""

import json
from typing import Any

from twisted.logger import Logger

from wampweb import WampWeb

log = Logger()


def setup(web: WampWeb) -> None:
    @web["default"].subscribe("com.example.github")
    def on_github(event: dict[str, Any]) -> None:
        # Header names arrive capitalized as Twisted spells them.
        kind = event["headers"].get("X-Github-Event", ["?"])[0]
        delivery = event["headers"].get("X-Github-Delivery", ["?"])[0]
        payload = json.loads(event["body"])
        log.info(
            "GitHub {kind} event {delivery}: {zen}",
            kind=kind,
            delivery=delivery,
            zen=payload.get("zen"),
        )
