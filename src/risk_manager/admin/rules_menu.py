"""`risk-manager admin rules edit`: an interactive menu (Rich prompts) over the same editor.

Pick a rule by number or name, change keys one at a time (each edit is validated at once, with the
whole file: an invalid one is shown and not kept), then review the changes, say why, and save.
Saving goes through `RulesEditor.commit`, so commitment mode, the atomic write and the audit entry
are exactly those of `rules set`.
"""

from __future__ import annotations

from rich.console import Console
from rich.prompt import Confirm, Prompt
from rich.table import Table

from risk_manager.admin.errors import AdminError
from risk_manager.admin.loosening import loosenings
from risk_manager.admin.rules_editor import EditResult, RulesEditor
from risk_manager.admin.rules_file import (
    SECTIONS,
    RulesDocument,
    changes,
    parse_value,
    rule_block,
    section_path,
    summaries,
)
from risk_manager.engine.config import RulesConfig
from risk_manager.engine.errors import ConfigError

_RULES = list(RulesConfig.model_fields)


class RulesMenu:
    def __init__(self, editor: RulesEditor, console: Console) -> None:
        self.editor = editor
        self.console = console
        self.original = editor.load()
        self.edits: list[tuple[str, str, str]] = []
        self.working = self.original

    def _rebuild(self, edits: list[tuple[str, str, str]]) -> RulesDocument:
        document = RulesDocument(self.original.path, self.original.original, self.editor.environ)
        for section, key, value in edits:
            document.set(section, key, parse_value(value))
        document.validated()
        return document

    def _show_rules(self) -> None:
        table = Table("#", "rule", "id", "enabled", "key limits")
        for number, item in enumerate(summaries(self.working.validated()), 1):
            table.add_row(str(number), item.key, item.rule_id, "on" if item.enabled else "off", item.limits)
        self.console.print(table)
        self.console.print(f"Sections: {', '.join(SECTIONS)}", highlight=False)

    def _pick(self, answer: str) -> str | None:
        text = answer.strip()
        if text.isdigit() and 1 <= int(text) <= len(_RULES):
            return _RULES[int(text) - 1]
        try:
            return section_path(text)[-1]
        except AdminError as exc:
            self.console.print(f"[red]{exc}[/red]", highlight=False)
            return None

    def _edit_section(self, section: str) -> None:
        while True:
            block = rule_block(self.working.validated(), section)
            table = Table("key", "value", title=section)
            for key, value in block.items():
                table.add_row(key, str(value))
            self.console.print(table)
            key = Prompt.ask("Key to change (dots for nested keys; blank: back to the rules)", default="",
                             console=self.console, show_default=False).strip()
            if not key:
                return
            value = Prompt.ask(f"New value for {section}.{key} (YAML: 400, true, 15m, [RTY, CL])",
                               console=self.console)
            try:
                self.working = self._rebuild([*self.edits, (section, key, value)])
            except (AdminError, ConfigError) as exc:
                self.console.print(f"[red]not applied:[/red] {exc}", highlight=False)
                continue
            self.edits.append((section, key, value))

    def run(self) -> EditResult | None:
        """Returns the saved result, or None when the user quits or changes nothing."""
        while True:
            self._show_rules()
            answer = Prompt.ask("Rule to edit (number or name; s: review and save; q: quit without saving)",
                                console=self.console).strip().lower()
            if answer == "q":
                self.console.print("Nothing saved.")
                return None
            if answer == "s":
                break
            section = self._pick(answer)
            if section is not None:
                self._edit_section(section)
        old, new = self.original.config, self.working.validated()
        diff = changes(old, new)
        if not diff:
            self.console.print("Nothing changed.")
            return None
        for change in diff:
            self.console.print(f"  {change}", highlight=False)
        loose = loosenings(old, new)
        if loose:
            self.console.print(f"[yellow]loosens protection:[/yellow] {'; '.join(loose)}", highlight=False)
        if not Confirm.ask("Save these changes?", console=self.console):
            self.console.print("Nothing saved.")
            return None
        reason = Prompt.ask("Reason (kept in the audit log)", default="", console=self.console, show_default=False)
        return self.editor.commit(self.working, "rules.edit", reason)
