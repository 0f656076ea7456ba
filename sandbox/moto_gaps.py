"""What moto 5.2.5 leaves out and AWS does, which the flow needs: TableId in DynamoDB's answers (read by
community.aws.dynamodb_table), the instance profile on every instance of a RunInstances (moto: the first only), and
DeregisterTargets of an instance that is not (or no longer) registered answered as a success (moto: InvalidTarget),
SSM DescribeParameters' ``DataType`` filter (moto refuses the key; read by ami_retire),
CreateLaunchTemplateVersion's ``SourceVersion`` (moto ignores it: the new version held only the data given),
CreateLaunchTemplate's own tags kept out of its first version's launch data (moto copied them in), and
DeleteLaunchTemplateVersions (moto has none; amazon.aws.ec2_launch_template deletes a template's versions first).

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
    from moto.ec2.models.launch_templates import LaunchTemplate, LaunchTemplateBackend
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
    _template_tags_apart(LaunchTemplateBackend)
    _delete_versions(LaunchTemplate, LaunchTemplates)


def _template_tags_apart(backend) -> None:
    """CreateLaunchTemplate's ``TagSpecification`` (resource type ``launch-template``) tags the template; the launch
    data of its version holds only ``LaunchTemplateData.TagSpecification``, for what it launches (EC2 API Reference,
    CreateLaunchTemplate, TagSpecifications). moto added the template's tags to the version's data, so that a module
    comparing the data it would send with the version's (amazon.aws.ec2_launch_template) made a new version each run."""
    create = backend.create_launch_template

    def create_launch_template(self, name, description, template_data, tag_spec):
        specs = [s for s in template_data.get("TagSpecifications", []) if s.get("ResourceType") != "launch-template"]
        data = {k: v for k, v in template_data.items() if k != "TagSpecifications"}
        if specs:
            data["TagSpecifications"] = specs
        return create(self, name, description, data, tag_spec)

    backend.create_launch_template = create_launch_template


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


def _delete_versions(template_class, responses) -> None:
    """DeleteLaunchTemplateVersions (EC2 API Reference): each version named is deleted, except the default one
    (``launchTemplateVersionIsDefaultVersion``) and one that does not exist (``launchTemplateVersionDoesNotExist``),
    which are listed as unsuccessful; version numbers are never given again. moto numbered versions by their place in
    a list: they are looked up by number here instead."""
    from xml.sax.saxutils import escape

    from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound
    from moto.ec2.models.launch_templates import LaunchTemplateVersion

    get = template_class.get_version

    def by_number(self, num):
        if str(num).lower() in ("$latest", "$default"):
            return get(self, num)
        found = [v for v in self.versions if str(v.number) == str(num)]
        if not found:
            raise InvalidLaunchTemplateVersionNotFound(template_id=self.id, version=num)
        return found[0]

    def create_version(self, data, description):
        number = max([v.number for v in self.versions] + [getattr(self, "_bakery_last", 0)]) + 1
        self._bakery_last = number
        version = LaunchTemplateVersion(self, number, data, description)
        self.versions.append(version)
        return version

    template_class.get_version = by_number
    template_class.default_version = lambda self: by_number(self, self.default_version_number)
    template_class.create_version = create_version

    def delete_launch_template_versions(self):
        template_id, name = self._get_param("LaunchTemplateId"), self._get_param("LaunchTemplateName")
        template = (
            self.ec2_backend.get_launch_template(template_id)
            if template_id
            else self.ec2_backend.get_launch_template_by_name(name)
        )
        wanted = [
            number
            for key, values in sorted(self.querystring.items())
            if key.startswith("LaunchTemplateVersion.")
            for number in values
        ]
        done, failed = [], []
        for number in wanted:
            version = next((v for v in template.versions if str(v.number) == str(number)), None)
            if version is None:
                failed.append((number, "launchTemplateVersionDoesNotExist", "The specified version does not exist."))
            elif template.is_default(version):
                failed.append((number, "launchTemplateVersionIsDefaultVersion", "Cannot delete the default version."))
            else:
                template.versions.remove(version)
                done.append(number)
        ids = (
            f"<launchTemplateId>{template.id}</launchTemplateId>"
            f"<launchTemplateName>{escape(template.name)}</launchTemplateName>"
        )
        ok = "".join(f"<item>{ids}<versionNumber>{n}</versionNumber></item>" for n in done)
        bad = "".join(
            f"<item>{ids}<versionNumber>{n}</versionNumber>"
            f"<responseError><code>{code}</code><message>{message}</message></responseError></item>"
            for n, code, message in failed
        )
        return (
            '<DeleteLaunchTemplateVersionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>{uuid.uuid4()}</requestId>"
            f"<successfullyDeletedLaunchTemplateVersionSet>{ok}</successfullyDeletedLaunchTemplateVersionSet>"
            f"<unsuccessfullyDeletedLaunchTemplateVersionSet>{bad}</unsuccessfullyDeletedLaunchTemplateVersionSet>"
            "</DeleteLaunchTemplateVersionsResponse>"
        )

    responses.delete_launch_template_versions = delete_launch_template_versions
