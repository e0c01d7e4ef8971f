"""Validates OCSF Compliance Findings (JSON Lines) against the OCSF schema.

The schema is OCSF's own (the `ocsf-json-schema` package ships every released version and
turns a class into a JSON Schema: required attributes, enums, no unknown attributes), checked
with `jsonschema`. Usage: validate.py VERSION FILE. Exit 0: every line valid (prints the
count); 1: a line is not; 3: the validator is not installed.
"""
import json
import sys

try:
    import jsonschema
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
except ImportError as missing:
    print(f"OCSF validator not installed: {missing}", file=sys.stderr)
    sys.exit(3)


def main(version, path):
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version)).get_class_schema(
        "compliance_finding"
    )
    validator = jsonschema.Draft202012Validator(schema)
    count = 0
    bad = 0
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            event = json.loads(line)
            for error in validator.iter_errors(event):
                bad += 1
                where = "/".join(str(p) for p in error.absolute_path)
                print(f"line {number}: {where}: {error.message}", file=sys.stderr)
            count += 1
    if bad:
        sys.exit(1)
    print(f"{count} valid")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
