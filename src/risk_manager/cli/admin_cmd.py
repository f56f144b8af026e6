"""`risk-manager admin …`: the admin password, the encrypted ProjectX credentials, `notify-test`, the risk
rules, logs and audit.

Secrets are read from a hidden prompt, or with `--password-stdin` one line each from stdin, in
the order each command's help gives. Exit codes: 0 done, 1 refused (message says why and what to
do), 3 wrong admin password or back-off running.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from risk_manager.admin.audit_view import audit_trail, parse_since
from risk_manager.admin.errors import AdminError
from risk_manager.admin.locations import DaemonFiles
from risk_manager.admin.log_view import read_log
from risk_manager.admin.rules_editor import EditResult, RulesEditor
from risk_manager.admin.rules_file import parse_value, rule_block, section_path, summaries
from risk_manager.admin.rules_menu import RulesMenu
from risk_manager.cli.refusals import refusals
from risk_manager.engine.errors import ConfigError
from risk_manager.health.config import ConfigFileError, read_config_section
from risk_manager.logs import configure_logging, redact
from risk_manager.notify import load_notifications, send_test
from risk_manager.security import password as password_module
from risk_manager.security.admin_directory import AdminDirectory
from risk_manager.security.errors import SecurityError
from risk_manager.security.gateway_check import DEFAULT_GATEWAY, check_credential
from risk_manager.security.paths import CONFIG_DIR_ENV, AdminPaths
from risk_manager.security.prompts import SecretReader
from risk_manager.security.vault import Credential
from risk_manager.store import StoreError

app = typer.Typer(help="Admin: password, encrypted account credentials, risk rules, logs and audit "
                       "(needs the admin password).",
                  no_args_is_help=True)
accounts_app = typer.Typer(help="ProjectX accounts: user name + API key, stored encrypted.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")

out = Console()
err = Console(stderr=True)

CONFIG = typer.Option(None, "--config", file_okay=False,
                      help=f"Admin/config directory (default: ${CONFIG_DIR_ENV}, /etc/risk-manager as root, "
                           "else the per-user config directory).")
PASSWORD_STDIN = typer.Option(False, "--password-stdin",
                              help="Read the secrets from stdin, one line each, instead of a hidden prompt.")


class KeySourceChoice(enum.StrEnum):
    auto = "auto"
    keyring = "keyring"
    password = "password"


@app.callback()
def _admin() -> None:
    """Admin commands. Every one asks for the admin password; 5 wrong ones block attempts for 5 minutes."""
    configure_logging("WARNING")


def _refusals() -> AbstractContextManager[None]:
    return refusals(err)


def _directory(config: Path | None) -> AdminDirectory:
    return AdminDirectory(AdminPaths.resolve(config))


def _tune() -> password_module.TunedParameters:
    err.print(f"Tuning the password hash to ~{round(password_module.TARGET_SECONDS * 1000)} ms on this machine…")
    return password_module.tune_parameters()


def _unlocked(directory: AdminDirectory, secrets: SecretReader) -> str:
    admin_password = secrets.read("Admin password: ", "admin password")
    directory.unlock(admin_password)
    return admin_password


@app.command()
def init(
    config: Path | None = CONFIG,
    password_stdin: bool = PASSWORD_STDIN,
    force: bool = typer.Option(False, "--force", help="Re-initialise (asks for the current password; accounts kept)."),
    wipe: bool = typer.Option(False, "--wipe",
                              help="Forgotten password: delete the stored credentials and start over."),
    key_source: KeySourceChoice = typer.Option(KeySourceChoice.auto, "--key-source",
                                               help="Where the credential key comes from: the OS keyring, or "
                                                    "derived from the admin password (auto: keyring if usable)."),
) -> None:
    """Set the admin password. Stdin lines: the current password (only with --force), then the new one."""
    with _refusals():
        if force and wipe:
            raise SecurityError("--force and --wipe exclude each other",
                                "use --force if you know the current password, --wipe if it is forgotten")
        directory = _directory(config)
        secrets = SecretReader(password_stdin)
        old = secrets.read("Current admin password: ", "current admin password") if force else None
        new = secrets.read_new("New admin password: ", "new admin password")
        password_module.check_new_password(new)
        if old is not None and directory.password.is_initialised():
            directory.unlock(old)  # before the slow tuning, so a wrong password fails fast
        tuned = _tune()
        if wipe:
            source = directory.wipe_and_initialise(new, tuned, key_source.value)
        else:
            source = directory.initialise(new, tuned, key_source.value, old_password=old)
    p = tuned.params
    out.print(f"Admin password set in {directory.paths.directory} (argon2id t={p.time_cost}, "
              f"m={p.memory_cost // 1024} MiB, p={p.parallelism}; one check ≈ {round(tuned.seconds * 1000)} ms).")
    out.print("Credentials are encrypted with a key "
              + ("held in the OS keyring." if source == "keyring" else "derived from the admin password."))


@app.command("change-password")
def change_password(config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Change the admin password (re-encrypts the credentials if their key comes from it). Stdin: current, new."""
    with _refusals():
        directory = _directory(config)
        secrets = SecretReader(password_stdin)
        old = _unlocked(directory, secrets)
        new = secrets.read_new("New admin password: ", "new admin password")
        password_module.check_new_password(new)
        directory.change_password(old, new, _tune())
    out.print("Admin password changed.")


@accounts_app.command("add")
def accounts_add(
    name: str = typer.Argument(..., help="A label for this account entry, e.g. topstep-50k."),
    user: str = typer.Option(..., "--user", help="The ProjectX (TopstepX) user name."),
    config: Path | None = CONFIG,
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Store a ProjectX user name and API key, encrypted. Stdin lines: admin password, API key."""
    with _refusals():
        directory = _directory(config)
        secrets = SecretReader(password_stdin)
        admin_password = _unlocked(directory, secrets)
        api_key = secrets.read("API key (hidden): ", "API key")
        try:
            credential = Credential(user.strip(), api_key.strip())
        except ValueError as exc:
            raise SecurityError(f"account {name!r}: {exc}", "give a user name with --user and a non-empty API key"
                                ) from None
        directory.add_account(admin_password, name, credential)
    out.print(f"Account entry {name!r} stored (user {credential.user_name}, key {credential.masked_key}).",
              highlight=False)


@accounts_app.command("remove")
def accounts_remove(
    name: str = typer.Argument(..., help="The account entry to delete."),
    config: Path | None = CONFIG,
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Delete a stored account entry. Stdin line: admin password."""
    with _refusals():
        directory = _directory(config)
        admin_password = _unlocked(directory, SecretReader(password_stdin))
        directory.remove_account(admin_password, name)
    out.print(f"Account entry {name!r} removed.", highlight=False)


@accounts_app.command("list")
def accounts_list(config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """List the stored account entries, API keys redacted. Stdin line: admin password."""
    with _refusals():
        directory = _directory(config)
        admin_password = _unlocked(directory, SecretReader(password_stdin))
        listings = directory.list_accounts(admin_password)
    if not listings:
        out.print("No account entries. Add one with `risk-manager admin accounts add NAME --user USER`.")
        return
    table = Table("entry", "user name", "API key", "state")
    for item in listings:
        table.add_row(item.name, item.user_name or "?", item.masked_key, item.problem or "ok")
    out.print(table)


@accounts_app.command("test")
def accounts_test(
    name: str = typer.Argument(..., help="The account entry to try."),
    gateway: str = typer.Option(DEFAULT_GATEWAY, "--gateway", help="Gateway base URL (e.g. the simulator's)."),
    config: Path | None = CONFIG,
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Log in with a stored entry and list the trading accounts its key sees. Stdin line: admin password."""
    with _refusals():
        directory = _directory(config)
        admin_password = _unlocked(directory, SecretReader(password_stdin))
        credential = directory.open_vault(admin_password).get(name)
        accounts = check_credential(gateway, credential)
        directory.audit.append("accounts.test", f"{len(accounts)} account(s) seen at {gateway}", account=name)
    table = Table("id", "name", "balance", "can trade", "simulated")
    for account in accounts:
        table.add_row(str(account.id), account.name, f"{account.balance:,.2f}", "yes" if account.can_trade else "no",
                      "yes" if account.simulated else "no")
    out.print(f"Entry {name!r} logs in; it sees {len(accounts)} active account(s):", highlight=False)
    out.print(table)


# --- rules, logs and audit (issue 7, items 3 and 6) -----------------------------------------------------

rules_app = typer.Typer(help="The risk rules: list, show, change (validated before saving; audited).",
                        no_args_is_help=True)
app.add_typer(rules_app, name="rules")

RULES_FILE = typer.Option(None, "--rules", dir_okay=False,
                          help="The risk rules file (default: config.yaml's risk_file, else risk.yaml in the "
                               "config directory).")
REASON = typer.Option("", "--reason", help="Why (kept in the audit log).")


@contextmanager
def _admin_refusals() -> Iterator[None]:
    """`_refusals` plus the errors of the rules editor, the risk schema and the store: one red line, exit 1."""
    with _refusals():
        try:
            yield
        except (AdminError, ConfigError, StoreError) as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


def _admin_session(config: Path | None, password_stdin: bool, rules: Path | None = None
                   ) -> tuple[AdminDirectory, DaemonFiles]:
    directory = _directory(config)
    _unlocked(directory, SecretReader(password_stdin))
    return directory, DaemonFiles.resolve(directory.paths.directory, rules=rules)


def _editor(directory: AdminDirectory, files: DaemonFiles) -> RulesEditor:
    return RulesEditor(files, directory.audit, directory.clock)


def _report(result: EditResult) -> None:
    if not result.written:
        out.print(f"No change: {result.path} already says so.", highlight=False)
        return
    for change in result.changes:
        out.print(f"  {change}", highlight=False)
    if result.loosenings:
        out.print(f"[yellow]loosens protection:[/yellow] {'; '.join(result.loosenings)}", highlight=False)
    out.print(f"Saved {result.path}. A running daemon applies it within a second (its log: risk_reloaded).",
              highlight=False)


@rules_app.command("list")
def rules_list(config: Path | None = CONFIG, rules: Path | None = RULES_FILE,
               password_stdin: bool = PASSWORD_STDIN) -> None:
    """Every rule: on or off, and its key limits. Stdin line: admin password."""
    with _admin_refusals():
        directory, files = _admin_session(config, password_stdin, rules)
        document = _editor(directory, files).load()
    table = Table("rule", "id", "enabled", "key limits", title=str(files.risk_file))
    for item in summaries(document.config):
        table.add_row(item.key, item.rule_id, "[green]on[/green]" if item.enabled else "off", item.limits)
    out.print(table)
    admin = document.config.admin
    out.print(f"commitment mode: {'on' if admin.commitment_mode else 'off'}; manual unlock: "
              f"{'allowed' if admin.allow_manual_unlock else 'not allowed'}", highlight=False)


@rules_app.command("show")
def rules_show(rule: str = typer.Argument(..., help="A rule (daily_realized_loss or RULE-003), admin or daily_reset."),
               config: Path | None = CONFIG, rules: Path | None = RULES_FILE,
               password_stdin: bool = PASSWORD_STDIN) -> None:
    """A rule's block with every default filled in (YAML). Stdin line: admin password."""
    with _admin_refusals():
        directory, files = _admin_session(config, password_stdin, rules)
        document = _editor(directory, files).load()
        block = rule_block(document.config, rule)
        path = section_path(rule)
    out.print(yaml.safe_dump({path[-1]: block}, sort_keys=False, allow_unicode=True).rstrip(), highlight=False,
              markup=False)


@rules_app.command("set")
def rules_set(rule: str = typer.Argument(..., help="A rule (daily_realized_loss or RULE-003), admin or daily_reset."),
              key: str = typer.Argument(..., help="The key; dots for nested keys (cooldowns.per_minute, limits.MNQ)."),
              value: str = typer.Argument(..., help="The value, read as YAML: 400, true, 15m, '\"17:00\"', [RTY, CL]."),
              reason: str = REASON, config: Path | None = CONFIG, rules: Path | None = RULES_FILE,
              password_stdin: bool = PASSWORD_STDIN) -> None:
    """Change one key of a rule. The whole file is validated before it is saved. Stdin line: admin password."""
    with _admin_refusals():
        directory, files = _admin_session(config, password_stdin, rules)
        editor = _editor(directory, files)
        document = editor.load()
        document.set(rule, key, parse_value(value))
        result = editor.commit(document, "rules.set", reason)
    _report(result)


@rules_app.command("unset")
def rules_unset(rule: str = typer.Argument(..., help="A rule (daily_realized_loss or RULE-003), admin or daily_reset."),
                key: str = typer.Argument(..., help="The key to remove, so its default applies (dots for nested)."),
                reason: str = REASON, config: Path | None = CONFIG, rules: Path | None = RULES_FILE,
                password_stdin: bool = PASSWORD_STDIN) -> None:
    """Remove a key from the file so its default applies again (validated, audited). Stdin line: admin password."""
    with _admin_refusals():
        directory, files = _admin_session(config, password_stdin, rules)
        editor = _editor(directory, files)
        document = editor.load()
        if not document.unset(rule, key):
            raise AdminError(f"{files.risk_file} does not set {'.'.join(section_path(rule))}.{key}",
                             "it already has its default; see `risk-manager admin rules show`")
        result = editor.commit(document, "rules.unset", reason)
    _report(result)


def _toggle(rule: str, enabled: bool, reason: str, config: Path | None, rules: Path | None,
            password_stdin: bool) -> None:
    with _admin_refusals():
        directory, files = _admin_session(config, password_stdin, rules)
        editor = _editor(directory, files)
        document = editor.load()
        document.enable(rule, enabled)
        result = editor.commit(document, "rules.enable" if enabled else "rules.disable", reason)
    _report(result)


@rules_app.command("enable")
def rules_enable(rule: str = typer.Argument(..., help="A rule (daily_realized_loss or RULE-003)."),
                 reason: str = REASON, config: Path | None = CONFIG, rules: Path | None = RULES_FILE,
                 password_stdin: bool = PASSWORD_STDIN) -> None:
    """Turn a rule on (its required keys must be set). Stdin line: admin password."""
    _toggle(rule, True, reason, config, rules, password_stdin)


@rules_app.command("disable")
def rules_disable(rule: str = typer.Argument(..., help="A rule (daily_realized_loss or RULE-003)."),
                  reason: str = REASON, config: Path | None = CONFIG, rules: Path | None = RULES_FILE,
                  password_stdin: bool = PASSWORD_STDIN) -> None:
    """Turn a rule off (a loosening: refused in commitment mode while locked). Stdin line: admin password."""
    _toggle(rule, False, reason, config, rules, password_stdin)


@rules_app.command("edit")
def rules_edit(config: Path | None = CONFIG, rules: Path | None = RULES_FILE,
               password_stdin: bool = PASSWORD_STDIN) -> None:
    """Interactive menu: pick a rule, change its keys, review, save. Stdin: admin password, then the answers."""
    with _admin_refusals():
        directory, files = _admin_session(config, password_stdin, rules)
        editor = _editor(directory, files)
        menu = RulesMenu(editor, out)
        result = menu.run()
    if result is not None:
        _report(result)


@app.command("logs")
def logs(tail: int = typer.Option(50, "--tail", min=0, help="Show the last N matching lines (0: all)."),
         level: str | None = typer.Option(None, "--level", help="Lowest level shown: DEBUG, INFO, WARNING, ERROR."),
         grep: str | None = typer.Option(None, "--grep", help="Only lines containing this text (any case)."),
         file: str = typer.Option("daemon", "--file", help="daemon, enforcement or errors."),
         days: int = typer.Option(0, "--days", min=0, help="Also read the rotated files of the previous N days."),
         log_dir: Path | None = typer.Option(None, "--log-dir", file_okay=False,
                                             help="The log directory (default: config.yaml's logging.files."
                                                  "directory, else the platform's)."),
         config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """The daemon's log files, filtered. Stdin line: admin password."""
    with _admin_refusals():
        directory = _directory(config)
        _unlocked(directory, SecretReader(password_stdin))
        files = DaemonFiles.resolve(directory.paths.directory, logs=log_dir)
        lines = read_log(files.log_dir, file, level=level, grep=grep, tail=tail or None, days=days)
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command("audit")
def audit(since: str | None = typer.Option(None, "--since", help="From a date/UTC time (2026-03-03T15:00) or an "
                                                                 "age (2h, 1d)."),
          account: str | None = typer.Option(None, "--account", help="Only this account (id or entry name)."),
          grep: str | None = typer.Option(None, "--grep", help="Only records containing this text (any case)."),
          database: Path | None = typer.Option(None, "--database", dir_okay=False,
                                               help="The daemon's database (default: config.yaml's database.path, "
                                                    "else state/risk.db in the config directory)."),
          config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Every admin action and every enforcement, oldest first. Stdin line: admin password."""
    with _admin_refusals():
        directory = _directory(config)
        _unlocked(directory, SecretReader(password_stdin))
        files = DaemonFiles.resolve(directory.paths.directory, database=database)
        try:
            start = parse_since(since, directory.clock.now()) if since else None
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        records = audit_trail(directory.audit, files.database, since=start, account=account, grep=grep)
    if not records:
        out.print("No audit records match.")
        return
    for r in records:  # one line per record, so the output greps and pipes well
        account_part = f" account={r.account}" if r.account else ""
        terminal_part = f" [{r.terminal}]" if r.terminal else ""
        out.print(f"{r.at:%Y-%m-%d %H:%M:%S} UTC {r.source} {r.who} {r.what}{account_part}: {r.detail}{terminal_part}",
                  highlight=False, markup=False, soft_wrap=True)
@app.command("notify-test")
def notify_test(config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Send a test notification to every channel of config.yaml's `notifications:`. Stdin line: admin password.

    Exit 0 when every channel took it, 1 when the section is missing or invalid, 4 when a channel failed.
    """
    with _refusals():
        directory = _directory(config)
        _unlocked(directory, SecretReader(password_stdin))
    try:
        section, source = read_config_section(directory.paths.directory, "notifications")
        settings = load_notifications(section, source=source)  # registers every URL and token for redaction
    except (ConfigFileError, ValueError) as exc:
        err.print(f"[red]error:[/red] {escape(redact(str(exc)))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if not settings.channels:
        err.print(f"[red]error:[/red] no notification channels in {escape(source)}: add a `notifications:` section "
                  "with `channels:` (see docs/operations.md)", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if not settings.enabled:
        err.print("[yellow]note:[/yellow] notifications.enabled is false: the daemon sends nothing until it is "
                  "true; testing the channels anyway.", highlight=False, soft_wrap=True)
    results = asyncio.run(send_test(settings))
    directory.audit.append("notify.test", ", ".join(f"{r.channel}={'ok' if r.ok else 'failed'}" for r in results))
    table = Table("channel", "result", "detail")
    for result in results:
        table.add_row(escape(result.channel), "[green]ok[/green]" if result.ok else "[red]failed[/red]",
                      escape(redact(result.detail)))
    out.print(table)
    if not all(result.ok for result in results):
        raise typer.Exit(4)


# --- locks and daemon control (issue 7, items 4 and 5): their own modules, built on the helpers above.
from risk_manager.cli import admin_locks, admin_service_key, daemon_control  # noqa: E402

admin_locks.register(app)
admin_service_key.register(app)
daemon_control.register(app)
