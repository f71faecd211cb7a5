"""The playbook language: pure code, no I/O.

YAML source with positions (`yaml_source`), the schema (`schema`), the loader that maps
schema errors to `path:line:col` (`loader`), whole-playbook checks and the compiled plan
(`compiler`, `plan`), expressions and templates in a bounded Jinja2 environment
(`expressions`, `templates`, `jinja_env`), durations, diagnostics, milestones, send
windows, the calendar math of date and schedule triggers (`calendar`), the Mermaid graph
and the JSON Schema export.

Nothing here imports the store, Temporal clients or HTTP code. Workflow code imports
`plan`, `milestones` and `sendwindow`, so this file re-exports nothing: importing the
package must stay as light as importing one of those modules.
"""
