"""Newer documented EC2 API members on top of Debian's botocore model.

Debian's python3-botocore (1.29) carries an EC2 model older than the
current EC2 API Reference.  ec2sim checks every parameter name and enum
value against the model, so a member AWS added since would be refused
as UnknownParameter although real EC2 takes it.  This is the one place
where such members are added, each with the AWS page that documents
it: nothing here is invented, and a member that Debian's model already
has is left alone (the model wins once it catches up).

MEMBERS: {action: {member: {"type": ..., "source": ...}}} adds an input
member to the action's request shape; type is a scalar type of the
model (boolean, integer, long, string, double, timestamp).

ENUMS: {shape name: {value: source}} adds values to an enum shape
(a parameter's or a reply's).

A region or endpoint that predates a member is modelled by refusing it
(Ec2Model.refuse, control API POST /model): the member is then unknown
again and its requests get UnknownParameter, as from an older endpoint.
"""

MEMBERS = {
    "StopInstances": {
        "SkipOsShutdown": {
            "type": "boolean",
            "source": "EC2 API Reference, StopInstances (request "
                      "parameter SkipOsShutdown); EC2 User Guide, "
                      "Methods for stopping an instance",
        },
    },
}

ENUMS = {
}


def _scalar_shape(shapes, type_name):
    """Name of a shape of this scalar type, added when the model has
    none of that exact form."""
    name = "Overlay" + type_name.capitalize()
    if name not in shapes:
        shapes[name] = {"type": type_name}
    return name


def apply(data, refused=()):
    """Merge the overlay into a loaded service model (the raw dict
    botocore's loader returns), in place.  refused: "Action.Member"
    names left out, as an endpoint that does not know them."""
    shapes = data["shapes"]
    for action, members in MEMBERS.items():
        op = data["operations"].get(action)
        if op is None or "input" not in op:
            raise KeyError(f"overlay: no action {action} in the model")
        req = shapes[op["input"]["shape"]]
        for member, spec in members.items():
            if member in req["members"] or \
                    f"{action}.{member}" in refused:
                continue
            req["members"][member] = {
                "shape": _scalar_shape(shapes, spec["type"]),
                "documentation": "ec2sim overlay: " + spec["source"],
            }
    for shape_name, values in ENUMS.items():
        shape = shapes.get(shape_name)
        if shape is None or "enum" not in shape:
            raise KeyError(f"overlay: no enum shape {shape_name}")
        for value in values:
            if value not in shape["enum"] and \
                    f"{shape_name}.{value}" not in refused:
                shape["enum"].append(value)
    return data


def names():
    """Every overlay entry as "Action.Member" / "Shape.value"."""
    out = [f"{a}.{m}" for a, ms in MEMBERS.items() for m in ms]
    out += [f"{s}.{v}" for s, vs in ENUMS.items() for v in vs]
    return out
