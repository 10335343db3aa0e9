// Validates Prometheus Operator objects (ServiceMonitor, PrometheusRule) with the models and JSON
// schemas of @kubernetes-models/prometheus-operator (generated from the operator's API types).
// Usage: node dev/helm/validate_crds.mjs NODE_MODULES_DIR INPUT.json
//   INPUT.json: [{"id": "...", "object": {...}}, ...]; prints [{"id", "ok", "errors"}] as JSON.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, input] = process.argv.slice(2);
const base = join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com");
const models = {};
for (const kind of ["ServiceMonitor", "PrometheusRule", "PodMonitor"]) {
  const mod = await import(pathToFileURL(join(base, "v1", `${kind}.js`)).href);
  models[`monitoring.coreos.com/v1/${kind}`] = mod[kind];
}

const results = [];
for (const { id, object } of JSON.parse(readFileSync(input, "utf8"))) {
  const Model = models[`${object.apiVersion}/${object.kind}`];
  if (!Model) {
    results.push({ id, ok: false, errors: [`no model for ${object.apiVersion} ${object.kind}`] });
    continue;
  }
  try {
    new Model(object).validate();
    results.push({ id, ok: true, errors: [] });
  } catch (err) {
    const errors = (err.errors || []).map((e) => `${e.instancePath || "/"} ${e.message}`);
    results.push({ id, ok: false, errors: errors.length ? errors : [String(err.message || err)] });
  }
}
process.stdout.write(JSON.stringify(results));
