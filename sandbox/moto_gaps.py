"""What moto 5.2.5 leaves out and AWS does, which the flow needs: TableId in DynamoDB's answers (read by
community.aws.dynamodb_table), the instance profile on every instance of a RunInstances (moto: the first only), and
DeregisterTargets of an instance that is not (or no longer) registered answered as a success (moto: InvalidTarget),
SSM DescribeParameters' ``DataType`` filter (moto refuses the key; read by ami_retire), and
CreateLaunchTemplateVersion's ``SourceVersion`` (moto ignores it: the new version held only the data given).

Filled where moto builds its answer, once per process: by the sandbox, and by the moto server of the integration
tests (tests/integration/conftest.py), so both behave as AWS does for these fields.
"""

from __future__ import annotations

import copy
import uuid

# A fixed namespace: the same table ARN always gets the same ID, as a table keeps its ID on AWS.
_TABLE_IDS = uuid.UUID("6f1d4c2e-7b1a-4e58-9a3c-5d2b8e0f7a41")


def apply() -> None:
    """Fill the gaps below; a second call changes nothing."""
    from moto.dynamodb.models.table import Table
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.elbv2.models import FakeTargetGroup
    from moto.ssm.models import SimpleSystemManagerBackend

    if getattr(Table.describe, "_bakery_gaps", False):
        return
    _table_ids(Table)
    _profile_for_every_instance(InstanceBackend)
    _deregister_unregistered(FakeTargetGroup)
    _data_type_filter(SimpleSystemManagerBackend)
    _source_version(LaunchTemplates)


def _source_version(responses) -> None:
    """CreateLaunchTemplateVersion with ``SourceVersion``: the new version inherits the source version's launch
    parameters, and those given in ``LaunchTemplateData`` replace theirs (EC2 API Reference,
    CreateLaunchTemplateVersion, SourceVersion); moto made a version of the given data alone."""
    create = responses.create_launch_template_version

    def create_launch_template_version(self):
        source = self._get_param("SourceVersion")
        if not source:
            return create(self)
        name, template_id = self._get_param("LaunchTemplateName"), self._get_param("LaunchTemplateId")
        template = (
            self.ec2_backend.get_launch_template(template_id)
            if template_id
            else self.ec2_backend.get_launch_template_by_name(name)
        )
        inherited = copy.deepcopy(template.get_version(source).data)
        make = template.create_version

        def create_version(data, description):
            return make({**inherited, **data}, description)

        template.create_version = create_version  # this call only
        try:
            return create(self)
        finally:
            del template.create_version

    responses.create_launch_template_version = create_launch_template_version


def _data_type_filter(backend) -> None:
    """DescribeParameters takes the ``DataType`` filter (``aws:ec2:image``, ``text``), as SSM does (its
    ParameterStringFilter keys); moto refuses the key. Applied before moto pages the answer, so pages stay full."""
    from moto.ssm.exceptions import InvalidFilterOption

    describe = backend.describe_parameters

    def describe_parameters(self, filters, parameter_filters):
        wanted = [f for f in parameter_filters or () if f.get("Key") == "DataType"]
        others = [f for f in parameter_filters or () if f.get("Key") != "DataType"]
        found = describe(self, filters, others)
        for data_type in wanted:
            values, option = set(data_type.get("Values") or ()), data_type.get("Option", "Equals")
            if option != "Equals":
                raise InvalidFilterOption(f"The filter option is not valid. Valid options are: [Equals]. ({option})")
            found = [p for p in found if p.data_type in values]
        return found

    backend.describe_parameters = describe_parameters


def _deregister_unregistered(group_class) -> None:
    """DeregisterTargets leaves out a target that is not registered, as ELB does (its answer is a success: two
    clients deregistering the same instance both succeed); moto fails the whole call with InvalidTarget. An instance
    ID that names no instance at all is still InvalidTarget, as on AWS."""
    from moto.elbv2.exceptions import InvalidTargetError

    deregister = group_class.deregister

    def deregister_registered(self, targets):
        for target in targets:
            tid = target["Id"]
            if tid not in self.targets and tid.startswith("i-") and not self.ec2_backend.get_instance_by_id(tid):
                raise InvalidTargetError()
        deregister(self, [target for target in targets if target["Id"] in self.targets])

    group_class.deregister = deregister_registered


def _profile_for_every_instance(backend) -> None:
    """RunInstances with an instance profile gives it to every instance launched, not only the first (moto's)."""
    run = backend.run_instances

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
        reservation = run(self, image_id, count, user_data, security_group_names, **kwargs)
        name, arn = kwargs.get("iam_instance_profile_name"), kwargs.get("iam_instance_profile_arn")
        for instance in reservation.instances[1:] if name or arn else []:  # moto's response does the first
            if name:
                self.associate_iam_instance_profile(instance_id=instance.id, iam_instance_profile_name=name)
            else:
                self.associate_iam_instance_profile(instance_id=instance.id, iam_instance_profile_arn=arn)
        return reservation

    backend.run_instances = run_instances


def _table_ids(table_class) -> None:
    """DynamoDB DescribeTable/CreateTable/DeleteTable answers carry TableId (community.aws.dynamodb_table reads it)."""
    describe = table_class.describe

    def with_table_id(self, base_key: str = "TableDescription"):
        result = describe(self, base_key)
        result[base_key].setdefault("TableId", str(uuid.uuid5(_TABLE_IDS, self.table_arn)))
        return result

    with_table_id._bakery_gaps = True
    table_class.describe = with_table_id
