"""The environment `sam local invoke` gives a function: computed by the SAM CLI's own code (the
function provider resolving template.yaml, the env-vars file and parameter overrides applied
as `sam local invoke --env-vars FILE --parameter-overrides ...` applies them), without the
container runtime that running the function would need. The tests use it to check that
events/local-stack.json gives every function what it needs.

usage: sam_local_env.py TEMPLATE FUNCTION ENV_VARS_FILE [Name=Value ...]
prints the variables as one JSON object.
"""

import json
import sys

from samcli.commands.local.cli_common.invoke_context import InvokeContext
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner


def main(template, function_id, env_vars_file, *overrides):
    parameters = dict(o.split("=", 1) for o in overrides)
    # The container manager is what needs Docker; nothing here runs a container.
    InvokeContext._get_container_manager = staticmethod(lambda *_: None)
    with InvokeContext(
        template_file=template,
        function_identifier=function_id,
        env_vars_file=env_vars_file,
        parameter_overrides=parameters,
    ) as context:
        runner = LocalLambdaRunner(
            local_runtime=None,
            function_provider=context._function_provider,
            cwd=context.get_cwd(),
            real_path=context.get_cwd(),
            env_vars_values=context._env_vars_value,
        )
        function = context._function_provider.get(function_id)
        if function is None:
            sys.exit(f"{template} has no function {function_id} with these parameters")
        json.dump(runner._make_env_vars(function).resolve(), sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
