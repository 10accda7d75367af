"""``retrain``: a first-class retraining trigger, run once per firing alert, audited on the alert.

One of three ways, by option:

* ``url`` — a signed POST to a trainer service (like ``webhook``; the delivery id is stable per alert, so a
  trainer can deduplicate too);
* ``command`` — a program, with the alert on stdin;
* ``mlflow_project`` — ``mlflow run <uri>`` (``entry_point``, ``parameters``, ``experiment``), started in the
  background; the run's process id is recorded on the alert.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from sustain.alerting.actions.base import Action, ActionFailed, AlertEvent, render
from sustain.alerting.actions.http import post_json
from sustain.alerting.actions.local import child_environment, run_command
from sustain.alerting.signing import sign


class Retrain(Action):
    type = "retrain"
    once_per_alert = True

    def run(self, event: AlertEvent) -> str:
        if event.kind != "firing":
            return "nothing to do: retraining starts when an alert fires"
        fields = event.fields()
        url = self.option("url")
        if url:
            template = self.spec.options.get("payload")
            payload = {"reason": "alert", **event.payload()} if template is None else render(template, fields)
            body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
            secret = self.option("secret")
            headers = sign(str(secret).encode(), event.delivery_id, body) if secret else {}
            return post_json(url, body, headers, self.timeout)
        command = self.option("command")
        if command:
            return run_command(command, event, self.timeout)
        project = self.option("mlflow_project")
        if project:
            return self._mlflow(project, fields)
        raise ActionFailed(f"retrain action {self.name!r} needs url, command or mlflow_project", retry=False)

    def _mlflow(self, project: str, fields: dict[str, object]) -> str:
        argv = [str(Path(sys.executable).with_name("mlflow")), "run", str(project), "--env-manager", "local"]
        entry = self.option("entry_point")
        if entry:
            argv += ["-e", str(entry)]
        experiment = self.option("experiment")
        if experiment:
            argv += ["--experiment-name", str(experiment)]
        for key, value in (render(self.option("parameters", {}), fields) or {}).items():
            argv += ["-P", f"{key}={value}"]
        log_dir = Path(self.option("log_dir", ".")).expanduser()
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / f"retrain-{fields['alert_id']}.log"
        try:
            with open(log_file, "ab") as out:
                process = subprocess.Popen(
                    argv, stdout=out, stderr=subprocess.STDOUT, env=child_environment(), start_new_session=True
                )
        except OSError as exc:
            raise ActionFailed(f"cannot start mlflow run: {exc.strerror}", retry=False) from exc
        return f"mlflow run started (pid {process.pid}, log {log_file})"
