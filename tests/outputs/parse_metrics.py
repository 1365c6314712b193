"""Reads a /metrics response body on stdin and parses it with prometheus_client's parsers: the
strict OpenMetrics 1.0 parser (argv[1] == "openmetrics") or the Prometheus 0.0.4 text parser.
Prints the families as JSON: {name: {"type": ..., "unit": ..., "samples": [[name, labels, value]]}}.
A parse error raises, and the exit code says so."""
import json
import sys

if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families

families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = {
        "type": family.type,
        "unit": family.unit,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }
print(json.dumps(families))
