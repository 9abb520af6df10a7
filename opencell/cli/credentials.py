"""``opencell doctor``'s live credential checks: one cheap authenticated call per secret.

A key that is set can still be wrong (revoked, pasted from another project, a bot token of
a deleted application). Each check makes the cheapest authenticated request its service
offers — list one model, read the bot's own user, ``auth.test`` — bounded by the doctor's
``--timeout``, and says which variable was rejected. Nothing is sent that costs money, and
no secret is ever printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opencell.cli.verdict import Check

if TYPE_CHECKING:
    from opencell.config import BotConfig

DISCORD_API = "https://discord.com/api/v10"
"""discord.py's REST base (``OPENCELL_DISCORD_API_BASE`` replaces it, as for the adapter)."""
SLACK_API = "https://slack.com/api/"
KEY_VARIABLES = {"claude": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY",
                 "moonshot": "MOONSHOT_API_KEY"}


def check_credentials(bot: BotConfig, env: Mapping[str, str] | None,
                      timeout: float) -> list[Check]:
    """The model key and each platform token of ``bot``, tried for real."""
    env = os.environ if env is None else env
    checks = []
    model = check_model_key(bot, env, timeout)
    if model is not None:
        checks.append(model)
    discord = bot.platforms.discord
    if discord is not None and discord.token.strip():
        checks.append(check_discord(bot.name, discord.token.strip(), env, timeout))
    slack = bot.platforms.slack
    if slack is not None and slack.bot_token.strip():
        checks.append(check_slack(bot.name, slack.bot_token.strip(),
                                  slack.api_base_url or SLACK_API, timeout))
    return checks


def check_model_key(bot: BotConfig, env: Mapping[str, str], timeout: float) -> Check | None:
    """``GET /v1/models`` with the bot's key (free on Anthropic, OpenAI and Moonshot)."""
    from opencell.errors import OpenCellError
    from opencell.llm import create_llm

    variable = KEY_VARIABLES.get(bot.llm.provider)
    if variable is None:
        return None
    try:
        client = create_llm(bot.llm, bot=bot.name, env=env)
    except OpenCellError:
        return None  # the secrets check has said what is missing
    base = str(getattr(client, "base_url", "")).rstrip("/")
    key = bot.llm.api_key or env.get(variable, "")
    if bot.llm.provider == "claude":
        url = f"{base}/v1/models?limit=1"
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    else:
        url = f"{base}/models"
        headers = {"Authorization": f"Bearer {key}"}
    name = f"bot {bot.name} model key"
    return _verdict(name, url, headers, timeout, variable=variable, service="the model API",
                    good=f"{variable} accepted by {base}")


def check_discord(bot: str, token: str, env: Mapping[str, str], timeout: float) -> Check:
    """``GET /users/@me`` with the bot token: what discord.py's login calls first."""
    base = (env.get("OPENCELL_DISCORD_API_BASE", "").strip() or DISCORD_API).rstrip("/")
    return _verdict(f"bot {bot} Discord token", f"{base}/users/@me",
                    {"Authorization": f"Bot {token}"}, timeout, variable="DISCORD_TOKEN",
                    service="Discord", good=f"DISCORD_TOKEN accepted by {base}")


def check_slack(bot: str, token: str, base: str, timeout: float) -> Check:
    """``auth.test`` with the bot token (Slack answers 200 with ``ok: false`` when wrong)."""
    import requests

    url = base.rstrip("/") + "/auth.test"
    name = f"bot {bot} Slack token"
    try:
        response = requests.post(url, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"})
        body = response.json() if response.ok else {}
    except (requests.RequestException, ValueError) as exc:
        return Check(name, False, f"cannot reach Slack at {url} ({type(exc).__name__})",
                     "check the network (or platforms.slack.api_base_url)")
    if body.get("ok"):
        return Check(name, True, f"SLACK_BOT_TOKEN accepted (team {body.get('team_id')})")
    return Check(name, False, f"Slack rejected SLACK_BOT_TOKEN "
                 f"({body.get('error') or f'HTTP {response.status_code}'})",
                 "copy the Bot User OAuth Token (xoxb-…) from the Slack app's settings")


def _verdict(name: str, url: str, headers: Mapping[str, str], timeout: float, *,
             variable: str, service: str, good: str) -> Check:
    import requests

    from opencell.exporters import describe_failure

    try:
        response = requests.get(url, headers=dict(headers), timeout=timeout)
    except requests.RequestException as exc:
        return Check(name, False, f"cannot reach {url} ({describe_failure(exc)})",
                     "check the network and the base URL")
    if response.status_code in (401, 403):
        return Check(name, False, f"{service} rejected {variable} (HTTP "
                     f"{response.status_code})", f"set a valid {variable} (environment or .env)")
    if not response.ok:
        # The key may be fine: some compatible servers do not offer this endpoint.
        return Check(name, None, f"{variable} not verified: {url} answered HTTP "
                     f"{response.status_code}")
    return Check(name, True, good)
