#!/usr/bin/python
# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_launch
short_description: Launch and keep a named group of EC2 instances, idempotently
version_added: 0.1.0
description:
  - Keeps exactly O(count) instances named O(name) (their C(Name) tag) in the region, launched from an image,
    with a hardware type, in a subnet, behind firewall rules and reachable with a key pair.
  - Instances in the C(pending), C(running), C(stopping) and C(stopped) states count. When O(subnet_id) or
    O(subnet_ids) is given, only instances in its VPC count.
  - Missing instances are launched in one RunInstances call with a deterministic client token and tagged at
    launch (instance and volumes), so a rerun after the controller died mid-task creates no duplicates, and two
    runs for the same O(name) started at the same moment (two jobs) get the same instances instead of twice as many.
    A token EC2 still remembers for instances that are gone since (a group launched and terminated before, such as a
    pipeline's builder) leads to the next token of a chain derived from those instances, up to 64 of them.
    Surplus instances are terminated oldest first (by launch time, then ID); with O(subnet_ids), from the zone with
    the most instances first.
  - New instances go to a zone that offers O(instance_type) (C(DescribeInstanceTypeOfferings)). When EC2 answers
    C(Unsupported) or C(InsufficientInstanceCapacity), the launch moves to the next zone that offers the type, with
    its own client token, unless O(availability_zone) or O(subnet_id) pins the zone.
  - With O(subnet_ids), the group spreads over the zones of those subnets (see there); RV(zones) counts its
    instances per zone.
  - Existing instances are reconciled in place where EC2 allows it, namely tags, state (stop and start),
    security groups, termination protection and, when O(metadata_options) is given, instance metadata
    options. What cannot change in place
    (image, subnet, availability zone, key, instance type, volumes) is reported in RV(drift) with a warning;
    such instances are replaced only when O(instance_refresh) is given.
  - With O(target_groups), every running instance of the group is registered in each target group, and an
    instance this task removes is deregistered and drained before it is terminated. A target group in another VPC
    than the instances fails the task before anything changes; new instances go to the zones the groups' load
    balancers enable first, and a target ELB will never route to (C(Target.NotInUse), a zone its load balancers do
    not enable; C(Target.InvalidState); C(Elb.InternalError)) fails the wait at once, naming the instance, its zone
    and the load balancers' zones.
  - Every option is checked before anything changes (name, image, instance type with the image's architecture,
    ENA support and boot mode, the zone's offering of the type, subnet, security groups, key pair, CIDRs, ports,
    tags, user data size); bad input fails in one line naming the value.
author:
  - bakery.ec2 maintainers (@bakery-ec2)
requirements:
  - cryptography (to read O(public_key); a dependency of ansible-core)
options:
  name:
    description:
      - Name of the group. Instances carry it as their C(Name) tag; that tag is how they are found.
      - With O(firewall), also the name of the managed security group.
      - An empty or blank name is refused.
    type: str
    required: true
  count:
    description:
      - The exact number of instances to have. V(0) terminates them all but keeps the managed security group.
    type: int
    default: 1
  state:
    description:
      - V(running) launches, starts and keeps O(count) running instances.
      - V(stopped) does the same but stops them (new instances are launched, then stopped).
      - V(absent) terminates every instance named O(name) and deletes the security group this module
        manages for O(name) when no instance uses it any more.
    type: str
    choices: [running, stopped, absent]
    default: running
  image_id:
    description:
      - The AMI to launch from. Required when instances must be launched.
      - It must exist, be available, and suit O(instance_type) (architecture; ENA support when the type
        requires ENA; boot mode, C(legacy-bios) or C(uefi), when the type supports only the other). AMI IDs are
        per region, so an ID from another region is not found here.
      - V(resolve:ssm:NAME) reads the AMI ID from SSM parameter C(NAME) (for example
        V(resolve:ssm:/aws/service/debian/release/12/latest/amd64)) before anything else, so the drift check, check
        mode and the result know the real image; a rerun with the same value changes nothing until the parameter
        names another image. Needs C(ssm:GetParameter); the SSM endpoint is chosen as for
        O(bakery.ec2.ami_find#module:ssm_parameter).
    type: str
  instance_type:
    description:
      - The instance type, for example V(t3.micro) or V(t4g.small). It must be offered in the region, and in
        the zone of O(availability_zone) or O(subnet_id) when one is given; otherwise the task fails before
        anything is created, naming the zone and the type.
    type: str
    default: t3.micro
  subnet_id:
    description:
      - The subnet to launch into. When given, only instances in its VPC count as the group, and it pins the zone.
      - When not given, new instances go to the subnet of the newest instance of the group (in
        O(availability_zone) when given) or else to the default VPC's default subnet in O(availability_zone)
        (any zone when not given), always in a zone that offers O(instance_type). Without a pinned zone, the
        fallback when a zone has no capacity is the subnet of another zone in the same VPC, among the subnets of
        the group's instances and the default subnets.
    type: str
  subnet_ids:
    description:
      - Subnets to spread the group over, one per availability zone, all in one VPC; the order breaks ties. Only
        instances in their VPC count as the group. Mutually exclusive with O(subnet_id) and O(availability_zone).
      - Each new instance goes to the subnet whose zone has the fewest instances of the group (ties to the subnet
        listed first). When a zone has no capacity for O(instance_type) (C(InsufficientInstanceCapacity),
        C(Unsupported)), its instances go to the next zone, the one with the fewest (a RunInstances call with its own
        client token).
      - Scaling in removes instances outside these subnets' zones first, then from the zone with the most instances
        (on a tie, the zone listed last), the oldest there first.
      - A subnet whose zone does not offer O(instance_type) fails the task before anything changes, when instances
        are to be launched.
      - A rerun with O(count) met changes nothing, even when the zones are unbalanced (after an outage, or after
        O(subnet_ids) was given to a group that exists); running instances are never moved. An instance in a subnet
        not listed here is reported in RV(drift) (option C(subnet_ids)), and O(instance_refresh) replaces it.
      - O(tags) go on the instances and volumes of every zone, as without this option.
    type: list
    elements: str
    version_added: 0.3.0
  availability_zone:
    description:
      - The availability zone to launch into, for example V(us-east-1a). Must agree with O(subnet_id).
      - It pins the zone, so no other zone is tried when this one has no capacity for O(instance_type).
    type: str
  key_name:
    description:
      - Name of the key pair for SSH. It must exist unless O(public_key) is given.
    type: str
  public_key:
    description:
      - An OpenSSH public key (C(ssh-rsa) or C(ssh-ed25519), as in an C(id_ed25519.pub) file).
      - The key pair O(key_name) is imported from it when missing. An existing key pair with another
        key fails the task; it is never overwritten.
      - With O(state=absent), the key pair O(key_name) is deleted when it holds this key and no instance
        (of any name) still uses it, so the task that imported a key can also remove it.
    type: str
  user_data:
    description:
      - User data (for example a cloud-init script), at most 16 KB once encoded as UTF-8.
      - Given only at launch; never returned nor logged.
    type: str
  iam_instance_profile:
    description:
      - Name or ARN of the IAM instance profile to give new instances.
    type: str
  volumes:
    description:
      - EBS volumes of new instances (the root volume is the one named like the image's root device).
      - For existing instances, differences are reported in RV(drift).
    type: list
    elements: dict
    suboptions:
      device_name:
        description: Device name, for example V(/dev/xvda) or V(/dev/sdf).
        type: str
        required: true
      size:
        description: Size in GiB. For the root volume, defaults to the image's snapshot size.
        type: int
      type:
        description: Volume type.
        type: str
        choices: [gp2, gp3, io1, io2, st1, sc1, standard]
        default: gp3
      iops:
        description:
          - Provisioned IOPS (gp3, io1 and io2 only); required for io1 and io2, which EC2 refuses without it.
        type: int
      throughput:
        description: Throughput in MiB/s (gp3 only).
        type: int
      encrypted:
        description:
          - Whether the volume is encrypted.
          - With EBS encryption by default on in the account and region, every new volume is encrypted whatever this
            says. V(false) then reads C(GetEbsEncryptionByDefault) once, warns, and an encrypted volume is not
            reported as drift (nor replaced by O(instance_refresh)).
        type: bool
        default: true
      kms_key_id:
        description:
          - KMS key to encrypt with (key ID, key ARN, alias name or alias ARN); the account's default EBS key when
            not given.
          - A customer-managed key needs the caller's C(kms:CreateGrant) (with C(kms:GrantIsForAWSResource)),
            C(kms:Decrypt), C(kms:DescribeKey), C(kms:GenerateDataKeyWithoutPlainText) and C(kms:ReEncrypt*) on it,
            as does a customer-managed default key; without them EC2 accepts the launch and then terminates the
            instance (C(Client.InternalError)), which fails the task in one line naming KMS and the keys.
        type: str
      delete_on_termination:
        description: Whether the volume is deleted with the instance.
        type: bool
        default: true
  metadata_options:
    description:
      - Instance metadata service settings, applied at launch.
      - On existing instances they are reconciled only when this option is given, and then only the suboptions
        it sets, so adopting an existing group never silently switches IMDSv1 off.
      - New instances get IMDSv2 required (O(metadata_options.http_tokens=required)) unless told otherwise.
    type: dict
    suboptions:
      http_tokens:
        description:
          - V(required) enforces IMDSv2 (session tokens); V(optional) also allows IMDSv1.
          - When not given, new instances get V(required) and existing ones are left alone.
        type: str
        choices: [required, optional]
      http_put_response_hop_limit:
        description:
          - Hop limit of metadata responses (PUT), 1 to 64; V(2) lets containers on the instance reach IMDSv2.
          - When not given, EC2's default applies to new instances and existing ones are left alone.
        type: int
      instance_metadata_tags:
        description: Whether instance tags are readable from the metadata service. Left alone when not given.
        type: str
        choices: [enabled, disabled]
  termination_protection:
    description:
      - Whether the API may not terminate the instances (C(DisableApiTermination)). Left alone when not given.
      - With V(false), protection is removed before surplus instances are terminated.
    type: bool
  security_groups:
    description:
      - Existing security groups (IDs or names in the instances' VPC) to attach.
      - When this or O(firewall) is given, the instances have exactly these groups plus the managed one.
    type: list
    elements: str
  firewall:
    description:
      - Ingress rules. The module keeps a security group named O(name) in the instances' VPC that holds
        exactly these rules (missing ones are added, others removed), attaches it to the instances, and deletes
        it when O(state=absent) leaves no instance using it. Outbound rules are left as EC2 creates them.
      - The group is tagged at creation with C(Name) (O(name)) and C(ManagedBy=bakery.ec2.ec2_launch), so an IAM
        policy can limit security group changes to the groups this module made (condition key
        C(ec2:ResourceTag/ManagedBy)).
      - A warning is given when port 22 is open to the whole internet.
    type: list
    elements: dict
    suboptions:
      proto:
        description: Protocol. V(all) means every protocol and port.
        type: str
        choices: [tcp, udp, icmp, all]
        default: tcp
      ports:
        description:
          - A port (V(443)) or an inclusive range C(from-to) (V(8000-8080)), each 0 to 65535.
          - Required for V(tcp) and V(udp); not used with V(icmp) (all ICMP types) and V(all).
        type: raw
      cidr:
        description: A source CIDR (IPv4 or IPv6) or a list of them, for example V(203.0.113.0/24).
        type: list
        elements: str
      source_group:
        description:
          - A source security group, by ID or by name in the VPC. O(name) itself means the managed group,
            so the instances can reach each other.
        type: str
  target_groups:
    description:
      - Elastic Load Balancing (ELBv2) target groups, by ARN or by name in the region, of target type C(instance).
        Every running instance of the group is registered in each of them, on the target group's port.
      - Instances this task removes (the surplus when O(count) goes down, all of them with O(state=absent), the
        old ones of O(instance_refresh)) are deregistered from each group first; they are terminated once
        their draining has ended (the group's deregistration delay, or less once their connections are closed),
        waiting at most O(wait_timeout) seconds.
      - ELB registers running instances only, so the task waits until the instances to register run, even with
        O(wait=false). With O(wait), it also waits until the instances it registered are C(healthy) in every group
        (at most O(wait_timeout) seconds) and fails, naming them and their health reasons, when they are not. A
        group that no listener of a load balancer forwards to reports its targets C(unused), never C(healthy).
      - Registrations in groups not listed are left alone. When not given, no target group is looked at.
      - A group that does not exist, or whose target type is not C(instance), fails the task before anything
        changes.
      - The ELBv2 endpoint is chosen like the SSM one of O(image_id), in this order.
        E(AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2) (botocore's variable for ELBv2) when set, else
        O(endpoint_url) unless it came from E(AWS_ENDPOINT_URL_EC2), else E(AWS_ENDPOINT_URL), else AWS's.
    type: list
    elements: str
  instance_refresh:
    description:
      - Replace, in batches and behind O(target_groups), the instances that differ from the options in a way that
        cannot change in place (those of RV(drift), namely image, instance type, subnet, zone, key, volumes), like an
        EC2 Auto Scaling instance refresh with C(SkipMatching) (instances that already match are never replaced).
      - "Each batch: launch the new instances (a RunInstances call with its own deterministic client token), wait
        until they run, register them in every target group, wait until they are C(healthy) in every group
        (O(instance_refresh.health_timeout)), wait O(instance_refresh.instance_warmup) seconds, deregister as many
        old instances and wait for their draining to end, terminate them; then the next batch."
      - New instances are launched before old ones go, so the group never has fewer than O(count) instances in
        service (registered and healthy, provided the old ones were) and at most O(count) plus one batch running.
      - A batch that is not healthy in every group in time is rolled back - deregistered, terminated - the old
        instances stay (registered again if needed), and the task fails in one line naming the new instances and
        their health reasons. Batches done before stay; a rerun goes on from there.
      - A rerun after the controller was stopped mid-refresh converges. New instances already there are not launched
        again (the client token, or they are found by name); they are registered and must be healthy before the
        old ones they replace go.
      - Only with O(state=running). Without O(target_groups), a batch counts as in service once its instances run.
      - When not given, differing instances are reported in RV(drift) with a warning and left alone.
    type: dict
    suboptions:
      batch_size:
        description:
          - How many instances to replace at once, 1 or more. Mutually exclusive with
            O(instance_refresh.min_healthy_percentage).
          - When neither is given, V(1).
        type: int
      min_healthy_percentage:
        description:
          - The part of O(count), 0 to 100, to keep out of the batch, as in Auto Scaling's C(MinHealthyPercentage).
            The batch size is C(max(1, count - ceil(count * min_healthy_percentage / 100))), so V(100) replaces one
            at a time and V(0) all at once.
          - Since new instances are launched before old ones go, capacity does not drop below O(count) whatever
            the percentage; it only sets how many are replaced at once (and so how many extra instances run).
        type: int
      instance_warmup:
        description:
          - Seconds to wait, once a batch is healthy in every target group, before its old instances are
            deregistered (as Auto Scaling's C(InstanceWarmup)).
        type: int
        default: 0
      health_timeout:
        description:
          - Seconds a batch has, once running and registered, to become C(healthy) in every target group; after
            that it is rolled back.
        type: int
        default: 300
  wait:
    description:
      - Whether to wait until every instance is in the state asked (C(running), C(stopped), or C(terminated)).
      - Polling starts after a quarter of a second and backs off to every 2 seconds.
      - The wait for C(running) fails at once, with the instance's state reason, when an instance reaches
        C(stopped) (it failed to boot or shut down from inside), C(shutting-down) or C(terminated).
      - With C(false), the task still returns only once EC2 shows the instances it launched (EC2 is eventually
        consistent; bounded at 120 seconds), so that a next task finding them by name sees them.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait. When they run out the task fails with the instance IDs and their last states.
    type: int
    default: 600
extends_documentation_fragment:
  - bakery.ec2.connection
  - bakery.ec2.tags
notes:
  - O(tags) are written at launch on the instances and their volumes and reconciled on existing instances.
    The C(Name) tag is always kept, and must equal O(name) when listed in O(tags).
  - The IAM instance profile is not checked beforehand (that would need IAM permissions); EC2 refuses an
    unknown one at launch.
  - EC2 is eventually consistent. A C(NotFound) answer about the security group, key pair or instances this
    task has just created is retried with backoff for up to two minutes; no other C(NotFound) is retried.
    C(RunInstances) is retried safely thanks to its client token. C(RegisterTargets) of instances this task (or the
    interrupted run before it) launched is retried on C(InvalidTarget) for up to two minutes too.
  - A create retried after a lost answer (5xx or timeout) that meets C(InvalidGroup.Duplicate),
    C(InvalidKeyPair.Duplicate) or C(InvalidPermission.Duplicate) counts as done once the module has checked that
    what exists is what it asked for (its managed tag, the same public key, every rule present).
  - Instance, volume and group IDs go to EC2 in requests of at most 200 values each, so groups of any size work.
  - Run one task per O(name) at a time. After a controller is killed, its module may still be running, because
    ansible-core's workers are in sessions of their own and killing C(ansible-playbook) (or its process group) does
    not end them. A rerun started meanwhile works on the same instances at the same time, so wait until the old
    module has ended (or kill it) before running the task again. The rerun then finishes what the killed run began.
  - Needs C(ec2:DescribeInstanceTypeOfferings) in addition to the other EC2 permissions it uses.
  - With O(target_groups), needs C(elasticloadbalancing:DescribeTargetGroups),
    C(elasticloadbalancing:DescribeTargetHealth), C(elasticloadbalancing:DescribeLoadBalancers),
    C(elasticloadbalancing:RegisterTargets) and C(elasticloadbalancing:DeregisterTargets).
  - Encrypted volumes need the KMS permissions of O(volumes[].kms_key_id) on their key. O(volumes[].encrypted=false)
    needs C(ec2:GetEbsEncryptionByDefault); a launch that EC2 ends for KMS reads C(ec2:GetEbsDefaultKmsKeyId) to name
    the account's default key.
  - Volumes are encrypted unless O(volumes[].encrypted=false); the root volume keeps the image's settings unless
    it is listed in O(volumes).
attributes:
  check_mode:
    support: full
    description:
      - Nothing is changed; the result says what would change (RV(changes), RV(terminated_ids), and for
        O(instance_refresh) the instances RV(instance_refresh.replaced) would replace in RV(instance_refresh.batches)
        batches).
  diff_mode:
    support: full
    description:
      - Shows the count, instance IDs, states, tags and firewall rules before and after; in check mode an instance
        O(instance_refresh) would replace shows as C((replacing ID)).
seealso:
  - module: bakery.ec2.ami_find
  - name: Instance refresh of EC2 Auto Scaling
    description: What O(instance_refresh) is modelled on (minimum healthy percentage, instance warm-up, skip matching).
    link: https://docs.aws.amazon.com/autoscaling/ec2/userguide/asg-instance-refresh.html
  - name: RunInstances
    description: The EC2 API call behind the launches, including client tokens.
    link: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html
"""

EXAMPLES = r"""
- name: Find the newest Debian 12 image
  bakery.ec2.ami_find:
    owners: ["136693071363"]
    name: debian-12-amd64-*
    architecture: x86_64
  register: base

- name: Three web servers in the default VPC, reachable over HTTP and SSH from the office
  bakery.ec2.ec2_launch:
    name: web
    count: 3
    image_id: "{{ base.image_id }}"
    instance_type: t3.small
    key_name: deploy
    public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
    firewall:
      - ports: 80
        cidr: 0.0.0.0/0
      - ports: 22
        cidr: [203.0.113.0/24, 2001:db8::/32]
      - proto: all
        source_group: web
    tags:
      Role: web
  register: web

- name: Scale down to one (the two oldest are terminated)
  bakery.ec2.ec2_launch:
    name: web
    count: 1
    image_id: "{{ base.image_id }}"

- name: A database host in a given subnet with an existing group, data volume, IMDS settings and protection
  bakery.ec2.ec2_launch:
    name: db
    image_id: "{{ base.image_id }}"
    instance_type: r6i.large
    subnet_id: subnet-0123456789abcdef0
    security_groups: [sg-0123456789abcdef0, db-clients]
    key_name: deploy
    termination_protection: true
    volumes:
      - device_name: /dev/xvda
        size: 20
      - device_name: /dev/sdf
        size: 200
        type: gp3
        iops: 6000
        throughput: 250
        kms_key_id: alias/db
    metadata_options:
      http_tokens: required
      http_put_response_hop_limit: 2
      instance_metadata_tags: enabled
    user_data: |
      #cloud-config
      package_upgrade: true

- name: Two workers pinned to one zone (fails before creating anything if the zone does not offer the type)
  bakery.ec2.ec2_launch:
    name: worker
    count: 2
    image_id: "{{ base.image_id }}"
    instance_type: c7i.large
    availability_zone: us-east-1a

- name: Four web servers spread over two zones (two each; a zone without capacity sends its share to the other)
  bakery.ec2.ec2_launch:
    name: web
    count: 4
    image_id: "{{ base.image_id }}"
    subnet_ids: [subnet-0123456789abcdef0, subnet-0fedcba9876543210]
    tags:
      Role: web
  register: web
  # web.zones: {"us-east-1a": 2, "us-east-1b": 2}

- name: Adopt an existing group and only raise its metadata hop limit (IMDSv1 setting left as it is)
  bakery.ec2.ec2_launch:
    name: legacy
    count: 4
    metadata_options:
      http_put_response_hop_limit: 2

- name: Workers from the image Debian's public SSM parameter names in this region (resolved by the module)
  bakery.ec2.ec2_launch:
    name: worker
    count: 2
    image_id: resolve:ssm:/aws/service/debian/release/12/latest/amd64
  register: workers  # workers.image_id is the AMI ID the parameter held

- name: Web servers registered in a target group (an instance removed later is drained first)
  bakery.ec2.ec2_launch:
    name: web
    count: 3
    image_id: "{{ base.image_id }}"
    target_groups: [web-tg]
  register: web
  # web.target_health: [{"instance_id": "i-...", "target_group_name": "web-tg", "state": "healthy", ...}, ...]

- name: Roll the web servers onto a new image, two at a time, behind the load balancer
  bakery.ec2.ec2_launch:
    name: web
    count: 4
    image_id: "{{ new_image.image_id }}"
    target_groups:
      - arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/0123456789abcdef
    instance_refresh:
      batch_size: 2
      instance_warmup: 30
      health_timeout: 300
  register: rollout
  # Fails after a rollback (rollout.instance_refresh.rolled_back); a rerun onto the same image replaces nothing.

- name: Replace a quarter of the fleet at a time (min_healthy_percentage 75 of 8 -> batches of 2)
  bakery.ec2.ec2_launch:
    name: web
    count: 8
    image_id: "{{ new_image.image_id }}"
    target_groups: [web-tg]
    instance_refresh:
      min_healthy_percentage: 75

- name: Stop the web servers (kept, not terminated)
  bakery.ec2.ec2_launch:
    name: web
    count: 1
    state: stopped

- name: What would change? (check mode, with a diff)
  bakery.ec2.ec2_launch:
    name: web
    count: 2
    image_id: "{{ base.image_id }}"
    tags:
      Role: web
      Stage: prod
    purge_tags: false
  check_mode: true
  diff: true
  register: plan

- name: Remove the web servers and their firewall group
  bakery.ec2.ec2_launch:
    name: web
    state: absent

- name: Remove the bastion, its firewall group, and the key pair it imported once no instance uses it
  bakery.ec2.ec2_launch:
    name: bastion
    state: absent
    key_name: ops
    public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/ops.pub') }}"
"""

RETURN = r"""
instances:
  description:
    - The instances of the group after the task, oldest first, with keys in snake_case as amazon.aws returns
      them and tags as a dict. User data is never included.
    - In check mode, the instances that exist and would be kept.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance ID.
      type: str
      sample: i-0123456789abcdef0
    state:
      description: State name and code.
      type: dict
      sample: {"code": 16, "name": "running"}
    instance_type:
      description: The instance type.
      type: str
      sample: t3.micro
    image_id:
      description: The AMI the instance was launched from.
      type: str
      sample: ami-0123456789abcdef0
    launch_time:
      description: When the instance was launched.
      type: str
      sample: "2026-06-01T10:00:00+00:00"
    placement:
      description: Availability zone and tenancy.
      type: dict
      sample: {"availability_zone": "us-east-1a", "tenancy": "default"}
    private_ip_address:
      description: Private IPv4 address.
      type: str
      sample: 172.31.5.10
    private_dns_name:
      description: Private DNS name.
      type: str
      sample: ip-172-31-5-10.ec2.internal
    public_ip_address:
      description: Public IPv4 address, when it has one.
      type: str
      sample: 203.0.113.10
    public_dns_name:
      description: Public DNS name, when it has one.
      type: str
      sample: ec2-203-0-113-10.compute-1.amazonaws.com
    subnet_id:
      description: The subnet.
      type: str
      sample: subnet-0123456789abcdef0
    vpc_id:
      description: The VPC.
      type: str
      sample: vpc-0123456789abcdef0
    key_name:
      description: The key pair.
      type: str
      sample: deploy
    security_groups:
      description: Attached security groups.
      type: list
      elements: dict
      sample: [{"group_id": "sg-0123456789abcdef0", "group_name": "web"}]
    metadata_options:
      description: The instance metadata service settings.
      type: dict
      sample: {"http_tokens": "required", "http_put_response_hop_limit": 2, "http_endpoint": "enabled"}
    tags:
      description: Tags as a dict.
      type: dict
      sample: {"Name": "web", "Role": "web"}
instance_ids:
  description: IDs of the instances of the group after the task, oldest first.
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
launched_ids:
  description: IDs of the instances launched by this task (empty in check mode).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef1]
terminated_ids:
  description: IDs of the instances terminated by this task (in check mode, those that would be).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef2]
drift:
  description:
    - Differences that cannot be fixed in place, per instance. The instances are left as they are, unless
      O(instance_refresh) replaces them (then these are the instances it replaced or would replace).
  returned: always
  type: list
  elements: dict
  sample: [{"instance_id": "i-0123456789abcdef0", "option": "image_id", "current": "ami-1", "wanted": "ami-2"}]
changes:
  description: What the task changed (or would change, in check mode), one line each.
  returned: always
  type: list
  elements: str
  sample: ["launch 2 instances", "authorize tcp 80 from 0.0.0.0/0 on web"]
zones:
  description:
    - How many instances of the group each availability zone has after the task (in check mode, would have).
    - With O(subnet_ids), every zone of its subnets is listed, V(0) when it has none.
  returned: when O(state) is not V(absent)
  type: dict
  sample: {"us-east-1a": 2, "us-east-1b": 1}
  version_added: 0.3.0
image_id:
  description: The AMI that O(image_id) named (for V(resolve:ssm:NAME), the ID the parameter held).
  returned: when O(image_id) is given
  type: str
  sample: ami-0123456789abcdef0
instance_refresh:
  description: What O(instance_refresh) did (in check mode, would do); also in the result of a failed task.
  returned: when O(instance_refresh) is given and O(state=running)
  type: dict
  contains:
    replaced:
      description: IDs of the old instances replaced and terminated (in check mode, those that would be).
      type: list
      elements: str
      sample: [i-0123456789abcdef0]
    launched:
      description: IDs of the new instances launched by the refresh (including a batch rolled back).
      type: list
      elements: str
      sample: [i-0123456789abcdef3]
    batches:
      description: How many batches were completed (in check mode, how many it would take).
      type: int
      sample: 1
    rolled_back:
      description: Whether a batch was not healthy in time and was rolled back (the task then fails).
      type: bool
      sample: false
  sample: {"replaced": ["i-0123456789abcdef0"], "launched": ["i-0123456789abcdef3"], "batches": 1, "rolled_back": false}
target_health:
  description: The health of the group's instances in each of O(target_groups) after the task, one entry per pair.
  returned: when O(target_groups) is given and O(state) is not V(absent)
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance.
      type: str
      sample: i-0123456789abcdef0
    target_group_arn:
      description: The target group's ARN.
      type: str
      sample: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/0123456789abcdef
    target_group_name:
      description: The target group's name.
      type: str
      sample: web-tg
    state:
      description:
        - As ELB reports it (C(initial), C(healthy), C(unhealthy), C(draining), C(unhealthy.draining), C(unused),
          C(unavailable)), or C(unregistered) when the instance is not registered in the group.
      type: str
      sample: healthy
    reason:
      description: ELB's reason code, when not healthy (such as C(Target.FailedHealthChecks)).
      type: str
      sample: Target.ResponseCodeMismatch
    description:
      description: ELB's description of the reason, when not healthy.
      type: str
      sample: "Health checks failed with these codes: [502]"
security_group_id:
  description: ID of the security group managed for O(firewall) (absent in check mode before it exists).
  returned: when O(firewall) is given
  type: str
  sample: sg-0123456789abcdef0
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, TaskError, WaitTimeout
from ansible_collections.bakery.ec2.plugins.module_utils._firewall import (
    Firewall,
    drop_firewall,
    firewall_atoms,
    resolve_groups,
)
from ansible_collections.bakery.ec2.plugins.module_utils._instances import (
    Fleet,
    LaunchSpec,
    check_image,
    check_instance_type,
    describe_ids,
    encryption_forced,
    find_instances,
    instance_drift,
    launch_tags,
    volumes_of,
    wait_visible,
)
from ansible_collections.bakery.ec2.plugins.module_utils._keypairs import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    KEY_NOT_FOUND,
    check_key_pair,
    drop_key_pair,
    import_key_pair,
    load_public_key,
)
from ansible_collections.bakery.ec2.plugins.module_utils._module import AwsModule
from ansible_collections.bakery.ec2.plugins.module_utils._placement import (
    find_subnet,
    find_subnets,
    launch_subnets,
    spread,
    surplus_of,
    zone_counts,
)
from ansible_collections.bakery.ec2.plugins.module_utils._refresh import Rollout, refresh_error
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import check_id, to_snake
from ansible_collections.bakery.ec2.plugins.module_utils._ssm import (
    ParameterError,
    check_name,
    parameter_name,
    resolve_image,
)
from ansible_collections.bakery.ec2.plugins.module_utils._tags import tags_to_dict, validate_tags
from ansible_collections.bakery.ec2.plugins.module_utils._targets import (
    HealthTimeout,
    TargetGroups,
    check_target_group_refs,
    find_target_groups,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

USER_DATA_LIMIT = 16 * 1024
IOPS_TYPES = ("gp3", "io1", "io2")


def validate(params: dict[str, Any]) -> str | None:
    """Return an error message for the first bad option value (no AWS call), or None."""
    if not params["name"].strip():
        return f"name: {params['name']!r} is blank; give the group's name (the Name tag of its instances)"
    if params["count"] < 0:
        return f"count: {params['count']} is negative; give the number of instances to have (0 or more)"
    if params["wait_timeout"] < 0:
        return f"wait_timeout: {params['wait_timeout']} is negative"
    if params["tags"]:
        error = validate_tags(params["tags"])
        if error:
            return error
        if "Name" in params["tags"] and str(params["tags"]["Name"]) != params["name"]:
            return f"tags: Name {params['tags']['Name']!r} conflicts with name {params['name']!r}"
    for option, kind in (("image_id", "image"), ("subnet_id", "subnet")):
        if option == "image_id" and parameter_name(params[option]) is not None:
            error = check_name(parameter_name(params[option]), option)
            if error:
                return error
        elif params[option] is not None:
            error = check_id(kind, params[option], option)
            if error:
                return error
    error = subnet_ids_error(params)
    if error:
        return error
    if params["user_data"] is not None and len(params["user_data"].encode("utf-8")) > USER_DATA_LIMIT:
        return f"user_data: {len(params['user_data'].encode('utf-8'))} bytes, EC2 allows at most {USER_DATA_LIMIT}"
    if params["public_key"] is not None:
        try:
            load_public_key(params["public_key"])
        except ValueError as err:
            return str(err)
    for group in params["security_groups"] or ():
        if group.startswith("sg-"):
            error = check_id("security_group", group, "security_groups")
            if error:
                return error
    hop = (params["metadata_options"] or {}).get("http_put_response_hop_limit")
    if hop is not None and not 1 <= hop <= 64:
        return f"metadata_options.http_put_response_hop_limit: {hop} is not between 1 and 64"
    seen = set()
    for idx, vol in enumerate(params["volumes"] or ()):
        where = f"volumes[{idx}]"
        if vol["device_name"] in seen:
            return f"{where}.device_name: {vol['device_name']!r} is listed twice"
        seen.add(vol["device_name"])
        if vol["size"] is not None and vol["size"] < 1:
            return f"{where}.size: {vol['size']} is not a size in GiB"
        if vol["iops"] is None and vol["type"] in ("io1", "io2"):
            return f"{where}.iops: required for volume type {vol['type']!r} (provisioned IOPS)"
        if vol["iops"] is not None and vol["type"] not in IOPS_TYPES:
            return f"{where}.iops: cannot be set for volume type {vol['type']!r} (only {', '.join(IOPS_TYPES)})"
        if vol["throughput"] is not None and vol["type"] != "gp3":
            return f"{where}.throughput: cannot be set for volume type {vol['type']!r} (only gp3)"
        if vol["kms_key_id"] and not vol["encrypted"]:
            return f"{where}.kms_key_id: given for a volume with encrypted=false"
    try:
        firewall_atoms(params["firewall"], params["name"])
    except ValueError as err:
        return str(err)
    return check_target_group_refs(params["target_groups"] or ()) or refresh_error(
        params["instance_refresh"], params["state"]
    )


def subnet_ids_error(params: dict[str, Any]) -> str | None:
    """What is wrong with ``subnet_ids`` alone or next to ``subnet_id`` / ``availability_zone`` (no AWS call)."""
    listed = params["subnet_ids"]
    if listed is None:
        return None
    for other in ("subnet_id", "availability_zone"):
        if params[other] is not None:
            return f"subnet_ids: cannot be given with {other} {params[other]!r}; give one of them"
    if not listed:
        return "subnet_ids: empty; give one subnet per zone to spread over, or leave it out"
    seen = set()
    for subnet_id in listed:
        error = check_id("subnet", subnet_id, "subnet_ids")
        if error:
            return error
        if subnet_id in seen:
            return f"subnet_ids: {subnet_id!r} is listed twice"
        seen.add(subnet_id)
    return None


def zone_of(instance: dict[str, Any]) -> str | None:
    return (instance.get("Placement") or {}).get("AvailabilityZone")


def snapshot(instances: Sequence[dict[str, Any]], rules: Iterable[str]) -> dict[str, Any]:
    """What diff mode shows of the group."""
    return {
        "count": len(instances),
        "instance_ids": [i["InstanceId"] for i in instances],
        "instances": {
            i["InstanceId"]: {"state": i["State"]["Name"], "tags": tags_to_dict(i.get("Tags"))} for i in instances
        },
        "firewall": sorted(rules),
    }


@dataclass
class Plan:
    """What :meth:`Task.look` found and decided, before anything changes."""

    spec: LaunchSpec  # what the instances are, the image resolved
    image: dict | None  # the image ``image_id`` names, when given
    existing: list  # the group's instances now, oldest first
    missing: int  # how many to launch
    listed: list | None  # the subnets of ``subnet_ids``, in their order
    subnets: list  # where new instances go, best first
    targets: TargetGroups | None  # the target groups of ``target_groups``
    group_ids: list | None  # the security groups of ``security_groups`` (None: not managed)
    key_to_import: bool  # the key pair ``public_key`` is imported as ``key_name``
    firewall: Firewall | None  # the managed security group (``firewall``)
    surplus: list  # the instances to terminate
    kept: list  # the instances that stay
    replacing: list = field(default_factory=list)  # drifted instances instance_refresh replaces, oldest first
    drift: list = field(default_factory=list)  # what differs and cannot change in place (not replaced)
    before: dict = field(default_factory=dict)  # the diff's before


class Task:
    """One run: look at the group and everything it needs, check it all (:meth:`look` returns a :class:`Plan`),
    then change what differs (:meth:`change`).

    The parts live in module_utils: instances in ``_instances`` (:class:`Fleet`, from the plan's
    :class:`LaunchSpec`), where new ones go in ``_placement``, the managed security group in ``_firewall``, the
    key pair in ``_keypairs``. Every change goes through one :class:`Changes`, so check mode changes nothing and
    the result lists what changed.
    """

    def __init__(self, module: AwsModule) -> None:
        self.module = module
        self.params = module.params  # the options as given (never written: the plan holds what they resolve to)
        self.client = module.client()
        self.changes = Changes(module.check_mode, self.client)
        self.fleet = Fleet(self.changes, LaunchSpec.of(self.params), module.warn)
        self.plan: Plan | None = None
        self.targets: TargetGroups | None = None  # also for state absent, which makes no plan
        self.rollout: Rollout | None = None
        self.planned: list[str] = []  # zones of the instances a check-mode run would launch
        self.waited: list | None = None  # the instances as the wait for their state left them
        self.refreshed: list = []  # the instances after instance_refresh

    @property
    def drift(self) -> list:
        return self.plan.drift if self.plan else []

    @property
    def firewall(self) -> Firewall | None:
        return self.plan.firewall if self.plan else None

    def present(self) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        """``state: running`` or ``stopped``; returns the diff's before, the instances after, the diff's after."""
        self.plan = self.look()
        self.fleet = Fleet(self.changes, self.plan.spec, self.module.warn)
        self.change(self.plan)
        final = self.final_instances(self.plan)
        return self.plan.before, final, self.after(self.plan, final)

    def look(self) -> Plan:
        """Read everything and check it against EC2; nothing changes here."""
        params, client = self.params, self.client
        subnet = find_subnet(client, params["subnet_id"], params["availability_zone"]) if params["subnet_id"] else None
        listed = find_subnets(client, params["subnet_ids"]) if params["subnet_ids"] else None
        place = subnet or (listed[0] if listed else None)
        existing = find_instances(client, params["name"], place["VpcId"] if place else None)
        image = self.find_image() if params["image_id"] else None
        # resolve:ssm:NAME becomes the image it names, for the drift check and the launch
        spec = LaunchSpec.of(params, image["ImageId"] if image else None)
        check_instance_type(client, spec.instance_type, image)
        missing = max(0, spec.count - len(existing))
        if missing and not spec.image_id:
            raise TaskError(f"image_id is required to launch {missing} instance(s) named {spec.name!r}")
        self.targets = self.find_targets()
        subnets = launch_subnets(client, spec.instance_type, subnet, spec.availability_zone, existing, missing, listed)
        vpc_id = subnets[0]["VpcId"] if subnets else None
        vpcs = {inst.get("VpcId") for inst in existing}
        if not place and len(vpcs) > 1 and (params["firewall"] is not None or params["security_groups"]):
            raise TaskError(
                f"instances named {spec.name!r} are in several VPCs ({', '.join(sorted(vpcs))}); give subnet_id"
            )
        if missing and not subnets:
            where = spec.availability_zone or f"a zone of {client.region} offering {spec.instance_type}"
            raise TaskError(f"no default subnet in {where} to launch into; give subnet_id")
        group_ids = None
        if params["security_groups"] is not None:
            group_ids = resolve_groups(client, params["security_groups"], vpc_id, "security_groups")
        key_to_import = check_key_pair(client, spec.key_name, params["public_key"])
        firewall = None
        if params["firewall"] is not None:
            firewall = Firewall(self.changes, spec.name, vpc_id)
            firewall.look(params["firewall"], self.module.warn)
        count = max(0, len(existing) - spec.count)  # the oldest go (of the fullest zone: subnet_ids)
        surplus = surplus_of(listed, existing, count) if listed else existing[:count]
        going = {inst["InstanceId"] for inst in surplus}
        kept = [inst for inst in existing if inst["InstanceId"] not in going]
        refresh = params["instance_refresh"] is not None and spec.state == "running"
        volumes = volumes_of(client, existing if refresh else kept, spec.volumes)
        forced = encryption_forced(client, spec.volumes)
        if forced:
            unencrypted = [vol["device_name"] for vol in spec.volumes if vol["encrypted"] is False]
            self.module.warn(
                f"volumes {', '.join(unencrypted)}: encrypted is false, but the account encrypts every new EBS volume "
                "(EBS encryption by default is on in this region): they are encrypted anyway"
            )
        drift = {inst["InstanceId"]: instance_drift(inst, spec, volumes, forced) for inst in existing}
        replacing = []
        if refresh and any(drift.values()):
            # The refresh removes the surplus too, old instances first, once their replacements are in service.
            surplus, kept = [], existing
            replacing = [inst for inst in existing if drift[inst["InstanceId"]]]
            if not missing:  # where the replacements go (checked now: nothing has changed yet)
                subnets = launch_subnets(
                    client, spec.instance_type, subnet, spec.availability_zone, existing, len(replacing), listed
                )
        if self.targets is not None:
            subnets = self.targets_place(subnets, listed, vpc_id or next(iter(sorted(v for v in vpcs if v)), None))
        kept_drift = [entry for inst in kept for entry in drift[inst["InstanceId"]]]
        for entry in kept_drift if not refresh else ():
            self.module.warn(
                f"{entry['instance_id']}: {entry['option']} is {entry['current']!r}, wanted {entry['wanted']!r}; "
                "not changed in place (give instance_refresh to replace the instance)"
            )
        return Plan(
            spec=spec,
            image=image,
            existing=existing,
            missing=missing,
            listed=listed,
            subnets=subnets,
            targets=self.targets,
            group_ids=group_ids,
            key_to_import=bool(key_to_import),
            firewall=firewall,
            surplus=surplus,
            kept=kept,
            replacing=replacing,
            drift=kept_drift,
            before=snapshot(existing, firewall.before if firewall else []),
        )

    def find_targets(self) -> TargetGroups | None:
        """The target groups of ``target_groups`` (TaskError for one that is unknown), or None when not given."""
        if not self.params["target_groups"]:
            return None
        client = self.module.client(self.client.region, "elbv2")
        changes = Changes(self.changes.check_mode, client)
        changes.actions = self.changes.actions  # one list of what the task changed, in order
        try:
            return TargetGroups(changes, find_target_groups(client, self.params["target_groups"]))
        except ValueError as err:
            raise TaskError(str(err)) from None

    def targets_place(self, subnets: list, listed: list | None, vpc_id: str | None) -> list:
        """TaskError when a target group is in another VPC than the instances; the subnets to launch into with the
        zones the groups' load balancers enable first (a target elsewhere would be unused)."""
        for group in self.targets.groups:
            if vpc_id and group.get("VpcId") and group["VpcId"] != vpc_id:
                raise TaskError(
                    f"target_groups: {group['TargetGroupName']!r} is in {group['VpcId']} but the instances are in "
                    f"{vpc_id}; a target group takes instances of its own VPC only; nothing was changed"
                )
        if listed or self.params["subnet_id"] or self.params["availability_zone"] or len(subnets) < 2:
            return subnets
        enabled = self.targets.enabled_zones()
        if not enabled:
            return subnets
        return sorted(subnets, key=lambda subnet: subnet["AvailabilityZone"] not in enabled)

    def find_image(self) -> dict:
        """The image ``image_id`` names (``resolve:ssm:NAME`` is read from SSM first); TaskError when unusable."""
        image_id, name = self.params["image_id"], parameter_name(self.params["image_id"])
        if name is not None:
            try:
                image_id = resolve_image(self.module.client(self.client.region, "ssm"), name, "image_id")
            except ParameterError as err:
                raise TaskError(str(err)) from None
        return check_image(self.client, image_id, name)

    def change(self, plan: Plan) -> None:
        """Key pair and firewall first, so that new instances can use them; then the instances."""
        spec, fleet = plan.spec, self.fleet
        key_imported = plan.key_to_import and import_key_pair(self.changes, spec.key_name, self.params["public_key"])
        if plan.firewall:
            plan.firewall.apply()
        self.remove(plan.surplus)
        groups = self.wanted_groups(plan)
        group_codes = plan.firewall.not_found_codes if plan.firewall else ()
        created = group_codes + (KEY_NOT_FOUND if key_imported else ())
        if plan.missing:
            current_ids = [inst["InstanceId"] for inst in plan.existing]
            if plan.listed:
                spread_plan = spread(plan.listed, [zone_of(inst) for inst in plan.kept], plan.missing)
                self.planned = [tried[0]["AvailabilityZone"] for tried, count in spread_plan for _n in range(count)]
                fleet.launch_spread(spread_plan, current_ids, groups, plan.image, created)
            else:
                fleet.launch(plan.missing, plan.subnets, current_ids, groups, plan.image, created)
        fleet.reconcile(plan.kept, groups, group_codes)
        self.waited = fleet.apply_state(plan.kept)
        if plan.targets is not None and spec.state == "running":
            self.register(plan)
        if self.params["instance_refresh"] is not None and spec.state == "running":
            self.refresh(plan, groups, created)
        fleet.wait(fleet.terminated, "terminated")

    def remove(self, instances: list, drain: bool = True) -> None:
        """Deregister ``instances`` from the target groups, wait for their draining (unless ``drain`` is false),
        terminate them."""
        if not instances:
            return
        ids = [inst["InstanceId"] for inst in instances]
        if self.targets is not None:
            draining = self.targets.deregister(ids)
            if drain:
                self.targets.wait_drained(draining, self.params["wait_timeout"])
        self.fleet.terminate(instances)

    def running_ids(self, plan: Plan) -> list[str]:
        """IDs of the group's instances to register (kept and launched), once running."""
        fleet = self.fleet
        known = {inst["InstanceId"]: inst["State"]["Name"] for inst in self.waited or plan.kept}
        kept = [inst["InstanceId"] for inst in plan.kept]
        ids = kept + [iid for iid in fleet.launched if iid not in kept]
        # Old instances the refresh will remove as soon as the batch in flight is in service are not registered.
        leaving = len(plan.existing) + len(fleet.launched) - plan.spec.count
        going = {inst["InstanceId"] for inst in plan.replacing[: max(0, leaving)]}
        ids = [iid for iid in ids if iid not in going]
        not_running = [iid for iid in ids if known.get(iid) != "running"]
        if not_running and not self.changes.check_mode:  # ELB registers running instances only
            self.fleet.wait_for(not_running, "running")
        return ids

    def register(self, plan: Plan) -> None:
        """Register the running instances in every target group; with ``wait``, wait until those registered now
        are healthy (a batch in flight of instance_refresh waits in the refresh, which can roll it back)."""
        newly = plan.targets.register(self.running_ids(plan), new=bool(self.fleet.launched))
        if plan.spec.wait and not plan.replacing:
            zones = {
                inst["InstanceId"]: (inst.get("Placement") or {}).get("AvailabilityZone")
                for inst in (self.waited or []) + plan.kept
            }
            try:
                plan.targets.wait_healthy(newly, plan.spec.wait_timeout, zones)
            except HealthTimeout as err:
                raise TaskError(f"target_groups: {err}") from None

    def refresh(self, plan: Plan, groups: list | None, created: tuple) -> None:
        """instance_refresh: replace the drifted instances in batches (see :class:`Rollout`)."""
        fleet = self.fleet

        placed = {inst["InstanceId"]: zone_of(inst) for inst in plan.existing}

        def launch(count: int, current_ids: list[str]) -> list[dict[str, Any]]:
            if plan.listed:  # next to the instances that stay: the batch's old ones (the oldest drifted) go
                going = [inst["InstanceId"] for inst in plan.replacing if inst["InstanceId"] in current_ids][:count]
                staying = [placed.get(iid) for iid in current_ids if iid not in going]
                spread_plan = spread(plan.listed, [zone for zone in staying if zone], count)
                ids = fleet.launch_spread(spread_plan, current_ids, groups, plan.image, created, salt="refresh|")
            else:
                ids = fleet.launch(count, plan.subnets, current_ids, groups, plan.image, created, salt="refresh|")
            batch = fleet.wait_for(ids, "running")
            placed.update((inst["InstanceId"], zone_of(inst)) for inst in batch)
            return batch

        options = self.params["instance_refresh"]
        self.rollout = Rollout(options, plan.spec.count, self.changes, plan.targets, launch, self.remove)
        if not plan.replacing:
            return
        going = {inst["InstanceId"] for inst in plan.replacing}
        current = self.waited
        if current is None:
            current = plan.kept + (describe_ids(self.client, fleet.launched) if fleet.launched else [])
        self.refreshed = self.rollout.run([inst for inst in current if inst["InstanceId"] not in going], plan.replacing)

    @staticmethod
    def wanted_groups(plan: Plan) -> list[str] | None:
        """The exact security groups the instances must have (``security_groups`` and the managed one), or None
        to leave them alone."""
        if plan.group_ids is None and plan.firewall is None:
            return None
        return list(plan.group_ids or []) + ([plan.firewall.member_id] if plan.firewall else [])

    def final_instances(self, plan: Plan) -> list:
        """The group's instances after the changes, as EC2 shows them."""
        fleet = self.fleet
        if self.changes.check_mode or not fleet.touched:
            return plan.kept
        if plan.replacing:  # the refresh read them, but their states may have changed since
            return describe_ids(self.client, [inst["InstanceId"] for inst in self.refreshed])
        if self.waited is not None:
            return self.waited
        # Instances just launched may not be visible yet (EC2 is eventually consistent): without a wait for
        # a state, wait until EC2 shows them, so that the next task, which finds them by name, sees them.
        final_ids = [inst["InstanceId"] for inst in plan.kept] + fleet.launched
        return wait_visible(self.client, final_ids, fleet.launched)

    def after(self, plan: Plan, final: list) -> dict:
        """The diff's after; in check mode, what the changes would make of the group."""
        spec = plan.spec
        after = snapshot(final, plan.firewall.after() if plan.firewall else [])
        if self.changes.check_mode:
            after["count"] = len(plan.kept) + plan.missing
            going = {inst["InstanceId"] for inst in plan.replacing}
            after["instance_ids"] = [f"(replacing {iid})" if iid in going else iid for iid in after["instance_ids"]]
            after["instance_ids"] += [f"(new {n + 1})" for n in range(plan.missing)]
            for iid in after["instances"]:
                after["instances"][iid]["state"] = spec.state
                if spec.tags is not None:
                    current = after["instances"][iid]["tags"]
                    after["instances"][iid]["tags"] = (
                        launch_tags(spec) if spec.purge_tags else dict(current, **launch_tags(spec))
                    )
        return after

    def zones(self, final: list) -> dict:
        """``zones`` of the result: instances per zone after the task (in check mode, with those it would launch)."""
        placed = [zone_of(inst) for inst in final] + (self.planned if self.changes.check_mode else [])
        listed = self.plan.listed if self.plan else None
        return zone_counts(listed or (), [zone for zone in placed if zone])

    def absent(self) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        """``state: absent``: terminate the group, then delete its firewall and imported key pair once unused."""
        params, fleet = self.params, self.fleet
        vpc_id = None
        if params["subnet_id"]:
            vpc_id = find_subnet(self.client, params["subnet_id"], params["availability_zone"])["VpcId"]
        elif params["subnet_ids"]:
            vpc_id = find_subnets(self.client, params["subnet_ids"])[0]["VpcId"]
        existing = find_instances(self.client, params["name"], vpc_id)
        self.targets = self.find_targets()
        before = snapshot(existing, [])
        self.remove(existing)
        fleet.wait(fleet.terminated, "terminated")
        shutting_down = bool(fleet.terminated) and not params["wait"]
        firewall_before = drop_firewall(
            self.changes, params["name"], vpc_id, shutting_down, params["wait_timeout"], self.module.warn
        )
        drop_key_pair(self.changes, params["key_name"], params["public_key"], fleet.terminated, self.module.warn)
        before["firewall"] = sorted(firewall_before)
        return before, [], snapshot([], [])


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "count": {"type": "int", "default": 1},
    "state": {"type": "str", "choices": ["running", "stopped", "absent"], "default": "running"},
    "image_id": {"type": "str"},
    "instance_type": {"type": "str", "default": "t3.micro"},
    "subnet_id": {"type": "str"},
    "subnet_ids": {"type": "list", "elements": "str"},
    "availability_zone": {"type": "str"},
    "key_name": {"type": "str", "no_log": False},
    "public_key": {"type": "str", "no_log": False},
    "user_data": {"type": "str", "no_log": True},
    "iam_instance_profile": {"type": "str"},
    "volumes": {
        "type": "list",
        "elements": "dict",
        "options": {
            "device_name": {"type": "str", "required": True},
            "size": {"type": "int"},
            "type": {
                "type": "str",
                "choices": ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"],
                "default": "gp3",
            },
            "iops": {"type": "int"},
            "throughput": {"type": "int"},
            "encrypted": {"type": "bool", "default": True},
            "kms_key_id": {"type": "str", "no_log": False},
            "delete_on_termination": {"type": "bool", "default": True},
        },
    },
    "metadata_options": {
        "type": "dict",
        "options": {
            "http_tokens": {"type": "str", "choices": ["required", "optional"]},
            "http_put_response_hop_limit": {"type": "int"},
            "instance_metadata_tags": {"type": "str", "choices": ["enabled", "disabled"]},
        },
    },
    "termination_protection": {"type": "bool"},
    "tags": {"type": "dict", "aliases": ["resource_tags"]},
    "purge_tags": {"type": "bool", "default": True},
    "security_groups": {"type": "list", "elements": "str"},
    "firewall": {
        "type": "list",
        "elements": "dict",
        "options": {
            "proto": {"type": "str", "choices": ["tcp", "udp", "icmp", "all"], "default": "tcp"},
            "ports": {"type": "raw"},
            "cidr": {"type": "list", "elements": "str"},
            "source_group": {"type": "str"},
        },
    },
    "target_groups": {"type": "list", "elements": "str"},
    "instance_refresh": {
        "type": "dict",
        "options": {
            "batch_size": {"type": "int"},
            "min_healthy_percentage": {"type": "int"},
            "instance_warmup": {"type": "int", "default": 0},
            "health_timeout": {"type": "int", "default": 300},
        },
    },
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "int", "default": 600},
}


def refresh_result(task: Task) -> dict[str, Any]:
    """``instance_refresh`` of the result (when the option is given), also for a failed task."""
    if task.params["instance_refresh"] is None or task.params["state"] == "absent":
        return {}
    if task.rollout is None:
        return {"instance_refresh": {"replaced": [], "launched": [], "batches": 0, "rolled_back": False}}
    return {"instance_refresh": task.rollout.result}


def main() -> None:
    module = AwsModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, required_by={"public_key": "key_name"})
    module.run(run)


def run(module: AwsModule) -> None:
    params = module.params
    if params["public_key"] is not None and not HAS_CRYPTOGRAPHY:
        module.fail(missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    error = validate(params)
    if error:
        module.fail(error)
    task = Task(module)
    changes = task.changes
    try:
        before, final, after = task.absent() if params["state"] == "absent" else task.present()
    except (TaskError, WaitTimeout, AwsError) as err:
        extra = {"error": err.as_dict()} if isinstance(err, AwsError) else {}
        module.fail(
            str(err),
            **extra,
            changed=bool(changes.actions),
            changes=changes.actions,
            launched_ids=task.fleet.launched,
            terminated_ids=task.fleet.terminated,
            **refresh_result(task),
        )
    result = {
        "changed": bool(changes.actions),
        "changes": changes.actions,
        "instances": [to_snake(inst) for inst in final],
        "instance_ids": [inst["InstanceId"] for inst in final],
        "launched_ids": task.fleet.launched,
        "terminated_ids": task.fleet.terminated,
        "drift": task.drift,
    }
    if params["state"] != "absent":
        result["zones"] = task.zones(final)
    result.update(refresh_result(task))
    if task.targets is not None and params["state"] != "absent":
        result["target_health"] = task.targets.health(result["instance_ids"])
    if task.plan and task.plan.spec.image_id:
        result["image_id"] = task.plan.spec.image_id
    if params["firewall"] is not None and task.firewall and task.firewall.group_id:
        result["security_group_id"] = task.firewall.group_id
    if module.module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit(**result)


if __name__ == "__main__":
    main()
