"""Reads digest.toml: the one settings module every floor may import.

`load_settings()` picks the file (`--config`, else `$DIGEST_CONFIG`, else `./digest.toml`,
else the packaged default), validates every key it knows, and resolves paths relative to the
file. With the packaged default, data paths resolve against the current directory and the
registry is the packaged sources.toml.

Sections later features read (`[relevance]`, `[issue]`, `[schedule]`, `[editor]`, `[scale]`)
are kept whole in `Settings.sections` for their own modules to validate.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError

PACKAGE_DIR = Path(str(resources.files("alliance_digest")))
DEFAULT_CONFIG = PACKAGE_DIR / "digest.toml"
DEFAULT_USER_AGENT = (
    "AllianceDigest/0.1 (+https://github.com/alliance-digest/alliance-digest; news tracking)"
)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """`[http]`: how we talk to publishers' servers."""

    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    #: Whole-source deadline: a server trickling one byte a second is cut off here.
    total_timeout: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    per_host_concurrency: int = 2
    #: Requests in flight across all hosts.
    max_connections: int = 16


@dataclass(frozen=True, slots=True)
class CollectSettings:
    """`[collect]`: when sources are due and when they count as stale."""

    interval_minutes: int = 60
    stale_days: int = 30
    max_backoff_minutes: int = 24 * 60
    #: Parser processes; 0 means one per CPU core.
    parse_processes: int = 0
    #: Seconds a run's clustering may take; what it does not reach is set aside for later
    #: runs (triage/run.py), so triage never blocks collect.
    triage_budget_seconds: float = 300.0


#: The seed issue's footer, its two links included (Markdown bold and links are allowed).
DEFAULT_FOOTER = (
    '"US-Japan Alliance Digest" is a bi-weekly summary of bilateral and related developments '
    "compiled by [Sasakawa USA's](https://spfusa.org/) \"US-Japan "
    "[NEXT Alliance Initiative](https://spfusa.org/next-alliance/).\" To receive \"Alliance "
    'Digest" via email, contact egulum@spfusa.org'
)


@dataclass(frozen=True, slots=True)
class IssueSettings:
    """`[issue]`: what a drafted issue is called, how it is numbered and laid out."""

    title: str = "US-Japan Alliance Digest"
    #: Volume = year - first_year + 1 (the seed issue, February 2023, is Vol 2).
    first_year: int = 2022
    footer: str = DEFAULT_FOOTER
    image_credit_prefix: str = "Image Source:"
    #: Section order in the issue; editors pick an item's section from this list.
    sections: list[str] = field(
        default_factory=lambda: ["Diplomacy", "Defense & Security", "Economy & Technology",
                                 "Regional"]
    )
    #: A folder of the user's own templates overriding the packaged ones ("" = packaged).
    templates: str = ""
    #: Where `digest draft` writes its files unless --out says otherwise.
    out_dir: str = "drafts"
    #: Page size of the PDF export: "Letter" or "A4".
    paper: str = "Letter"


@dataclass(frozen=True, slots=True)
class EditorSettings:
    """`[editor]`: the web desk."""

    host: str = "127.0.0.1"
    port: int = 8710
    session_hours: int = 12
    #: Failed logins allowed per user name and per client address in `login_window_minutes`.
    login_attempts: int = 5
    login_window_minutes: int = 15
    #: Add-by-URL may fetch loopback, private and link-local addresses (an intranet desk).
    allow_private_urls: bool = False
    #: Non-public networks add-by-URL may fetch all the same ("10.1.2.3/32", "127.0.0.1").
    allowed_url_networks: list[str] = field(default_factory=list)
    #: Addresses of reverse proxies whose X-Forwarded-For/-Proto the desk believes (none).
    trusted_proxies: list[str] = field(default_factory=list)
    #: Seconds a search or queue listing may run (desk and CLI) before it answers "search
    #: too broad" instead (store/db.py `time_budget`).
    search_budget_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """`[schedule]`: when the deployments run (`digest serve`, `digest deploy`)."""

    timezone: str = "America/New_York"
    collect_cron: str = "0 */3 * * *"
    #: RRULE without DTSTART; `draft_start` supplies it (naive local time in `timezone`).
    draft_rrule: str = "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;BYHOUR=9;BYMINUTE=0;BYSECOND=0"
    draft_start: str = "2026-01-06T09:00:00"


@dataclass(frozen=True, slots=True)
class ScaleSettings:
    """`[scale]`: run the fetch-and-parse step on an existing Dask cluster ("" = locally)."""

    dask_address: str = ""


PAPER_SIZES = ("Letter", "A4")
SMTP_SECURITY = ("starttls", "ssl", "none")
DEFAULT_SUBJECT = "US-Japan Alliance Digest Vol {volume}.{number} — {date}"
LOOPBACK_HOSTS = frozenset({"localhost", "::1"})


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """`[email]`: how `digest issue send` reaches subscribers (credentials come from the
    environment, DIGEST_SMTP_USER and DIGEST_SMTP_PASSWORD, never from this file)."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    security: str = "starttls"
    #: `from` in digest.toml (a Python keyword, hence the field's name).
    sender: str = ""
    reply_to: str = ""
    #: Addresses, or (`recipients_file`) a file of addresses, one a line.
    recipients: tuple[str, ...] = ()
    recipients_file: Path | None = None
    #: {title} {volume} {number} {date} are filled in.
    subject: str = DEFAULT_SUBJECT
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """`[publish]`: the public archive `digest publish` writes ("" = the draft flow skips it)."""

    out_dir: str = ""
    #: Absolute URL the archive is served at, for the feed's ids and links ("" = relative).
    base_url: str = ""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: the only hosts `security = "none"` may send to."""
    import ipaddress

    if host.strip().lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False


def _email(where: str, data: dict[str, Any], base: Path) -> EmailSettings:
    known = {"smtp_host", "smtp_port", "security", "from", "reply_to", "recipients", "subject",
             "timeout"}
    unknown = sorted(set(data) - known)
    if unknown:
        names = ", ".join(sorted(known))
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {names})")
    values: dict[str, Any] = {}
    for key in ("smtp_host", "from", "reply_to", "subject", "security"):
        if key in data:
            values["sender" if key == "from" else key] = _typed(where, key, data[key], str).strip()
    if "smtp_port" in data:
        port = _typed(where, "smtp_port", data["smtp_port"], int)
        if not 0 < port < 65536:
            raise ConfigError(f"{where}: 'smtp_port' must be 1-65535, got {port}")
        values["smtp_port"] = port
    if "timeout" in data:
        timeout = float(_typed(where, "timeout", data["timeout"], (int, float)))
        if timeout <= 0:
            raise ConfigError(f"{where}: 'timeout' must be greater than 0")
        values["timeout"] = timeout
    security = values.get("security", "starttls")
    if security not in SMTP_SECURITY:
        raise ConfigError(f"{where}: 'security' must be one of {', '.join(SMTP_SECURITY)}, "
                          f"got {security!r}")
    host = values.get("smtp_host", EmailSettings.smtp_host)
    if security == "none" and not is_loopback(host):
        raise ConfigError(f"{where}: security = \"none\" sends in clear text; it is allowed only "
                          f"for a loopback host, not {host!r}")
    recipients = data.get("recipients", [])
    if isinstance(recipients, str):
        values["recipients_file"] = (base / Path(recipients).expanduser()).resolve()
    elif isinstance(recipients, list) and all(isinstance(r, str) for r in recipients):
        values["recipients"] = tuple(r.strip() for r in recipients)
    else:
        raise ConfigError(f"{where}: 'recipients' must be a list of addresses or a file path")
    subject = values.get("subject", DEFAULT_SUBJECT)
    try:
        subject.format(title="t", volume=1, number=1, date="d")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{where}: 'subject': bad template ({e}); use {{title}}, {{volume}}, "
                          "{number}, {date}") from None
    if "smtp_port" not in values:
        values["smtp_port"] = {"ssl": 465, "starttls": 587}.get(security, 25)
    return EmailSettings(**values)


@dataclass(frozen=True, slots=True)
class TriageSettings:
    """`[triage]`: when the learned relevance model retrains by itself."""

    #: Editors' decisions (include, shortlist, exclude) since the last training that make the
    #: next collect or draft run train again.
    retrain_after: int = 50


@dataclass(frozen=True, slots=True)
class Settings:
    """The loaded configuration."""

    #: The file read, or None when the packaged default is in use.
    config_path: Path | None
    store_path: Path
    sources_file: Path
    http: HttpSettings = field(default_factory=HttpSettings)
    collect: CollectSettings = field(default_factory=CollectSettings)
    issue: IssueSettings = field(default_factory=IssueSettings)
    editor: EditorSettings = field(default_factory=EditorSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    scale: ScaleSettings = field(default_factory=ScaleSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)
    triage: TriageSettings = field(default_factory=TriageSettings)
    #: Other top-level tables, unvalidated here (each feature validates its own).
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the config resolve against."""
        return self.config_path.parent if self.config_path else Path.cwd()

    @property
    def data_dir(self) -> Path:
        """Folder that holds the database (and other runtime files next to it)."""
        return self.store_path.parent

    @property
    def uses_packaged_default(self) -> bool:
        return self.config_path is None

    def resolve(self, value: str | os.PathLike[str]) -> Path:
        """Resolve a path from the config relative to the config file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


def config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Which config file applies: explicit, $DIGEST_CONFIG, ./digest.toml, or None (packaged)."""
    chosen = explicit or os.environ.get("DIGEST_CONFIG")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path.resolve()
    local = Path("digest.toml")
    return local.resolve() if local.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into one ConfigError line naming the file."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def _typed(where: str, key: str, value: Any, want: type | tuple[type, ...]) -> Any:
    # bool is an int in Python; a number where a boolean is wanted (or the reverse) is a mistake.
    if isinstance(value, bool) and want is not bool and bool not in (
        want if isinstance(want, tuple) else (want,)
    ):
        raise ConfigError(f"{where}: '{key}' must be {_name(want)}, not a boolean")
    if not isinstance(value, want):
        raise ConfigError(f"{where}: '{key}' must be {_name(want)}, got {value!r}")
    return value


def _name(want: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if want == (int, float):
        return "a number"
    if isinstance(want, tuple):
        return " or ".join(names.get(w, w.__name__) for w in want)
    return names.get(want, want.__name__)


def _section(where: str, data: dict[str, Any], cls: type, numbers_positive: bool = True) -> Any:
    """Build a settings dataclass from a table, refusing unknown keys and wrong types."""
    defaults = cls()
    known = {f for f in cls.__dataclass_fields__}
    unknown = sorted(set(data) - known)
    if unknown:
        known_list = ", ".join(sorted(known))
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {known_list})")
    values: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(defaults, key)
        if isinstance(default, float):
            _typed(where, key, value, (int, float))
            value = float(value)
        else:
            _typed(where, key, value, type(default))
        if numbers_positive and isinstance(value, int | float) and not isinstance(value, bool):
            allowed_zero = key == "parse_processes"
            if value < 0 or (value == 0 and not allowed_zero):
                raise ConfigError(f"{where}: '{key}' must be greater than 0, got {value!r}")
        values[key] = value
    return cls(**values)


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate the configuration (see module docstring for which file)."""
    path = config_file(explicit)
    data = read_toml(path or DEFAULT_CONFIG)
    where = str(path or DEFAULT_CONFIG)
    base = path.parent if path else Path.cwd()

    store = data.pop("store", {})
    _typed(where, "store", store, dict)
    extra = sorted(set(store) - {"path"})
    if extra:
        raise ConfigError(f"{where}: [store]: unknown key '{extra[0]}' (known: path)")
    store_path = Path(_typed(f"{where}: [store]", "path", store.get("path", "data/digest.db"), str))

    src = data.pop("sources", {})
    _typed(where, "sources", src, dict)
    extra = sorted(set(src) - {"file"})
    if extra:
        raise ConfigError(f"{where}: [sources]: unknown key '{extra[0]}' (known: file)")
    sources_file = Path(
        _typed(f"{where}: [sources]", "file", src.get("file", "sources.toml"), str)
    )
    if path is None and not sources_file.is_absolute():
        # The packaged default's registry ships next to it.
        sources_file = PACKAGE_DIR / sources_file
    elif not sources_file.is_absolute():
        sources_file = base / sources_file

    http = _section(f"{where}: [http]", _table(where, data.pop("http", {}), "http"), HttpSettings)
    collect = _section(
        f"{where}: [collect]", _table(where, data.pop("collect", {}), "collect"), CollectSettings
    )
    issue = _section(f"{where}: [issue]", _table(where, data.pop("issue", {}), "issue"),
                     IssueSettings)
    if not issue.sections or not all(isinstance(x, str) and x.strip() for x in issue.sections):
        raise ConfigError(f"{where}: [issue]: 'sections' must be a list of section names")
    editor = _section(f"{where}: [editor]", _table(where, data.pop("editor", {}), "editor"),
                      EditorSettings)
    for key in ("allowed_url_networks", "trusted_proxies"):
        _networks(f"{where}: [editor]", key, getattr(editor, key))
    schedule = _section(f"{where}: [schedule]",
                        _table(where, data.pop("schedule", {}), "schedule"), ScheduleSettings)
    scale = _section(f"{where}: [scale]", _table(where, data.pop("scale", {}), "scale"),
                     ScaleSettings)
    if issue.paper not in PAPER_SIZES:
        raise ConfigError(f"{where}: [issue]: 'paper' must be Letter or A4, got {issue.paper!r}")
    email = _email(f"{where}: [email]", _table(where, data.pop("email", {}), "email"), base)
    publish = _section(f"{where}: [publish]", _table(where, data.pop("publish", {}), "publish"),
                       PublishSettings)
    triage = _section(f"{where}: [triage]", _table(where, data.pop("triage", {}), "triage"),
                      TriageSettings)
    if http.per_host_concurrency > http.max_connections:
        raise ConfigError(f"{where}: [http] 'per_host_concurrency' exceeds 'max_connections'")
    return Settings(
        config_path=path,
        store_path=store_path if store_path.is_absolute() else base / store_path,
        sources_file=sources_file,
        http=http,
        collect=collect,
        issue=issue,
        editor=editor,
        schedule=schedule,
        scale=scale,
        email=email,
        publish=publish,
        triage=triage,
        sections=data,
    )


def _networks(where: str, key: str, values: list[Any]) -> None:
    """Every entry an IP address or network ("10.0.0.0/8", "::1")."""
    for value in values:
        try:
            if not isinstance(value, str):
                raise TypeError(value)
            ipaddress.ip_network(value.strip(), strict=False)
        except (ValueError, TypeError):
            raise ConfigError(f"{where}: '{key}' holds {value!r}, not an IP address or "
                              "network") from None


def _table(where: str, value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '{name}' must be a table ([{name}])")
    return value
