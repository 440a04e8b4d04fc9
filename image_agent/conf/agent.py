"""Options of the ``[agent]`` group: RPC topic, local paths and transfers.

Read by the agent only. Its callers have their own group,
``[image_agent]`` (``image_agent.conf.client``).
"""

from oslo_config import cfg

from image_agent.conf import shared

GROUP = 'agent'

agent_group = cfg.OptGroup(
    GROUP,
    title='Agent options',
    help='The RPC topic of the agent, the local directories it may write '
    'downloads to and read uploads from, and the limits of its transfers.',
)

rpc_opts = [
    cfg.StrOpt(
        'topic',
        default='image-agent',
        help='RPC topic the agent listens on. Every agent also listens on '
        '"<topic>.<host>", so a caller can reach one agent by host name. '
        'Callers set the same topic in their [image_agent] group.',
    ),
    cfg.BoolOpt(
        'listen_on_control_exchange',
        default=True,
        deprecated_for_removal=True,
        deprecated_reason='Only for callers of image-agent before its '
        'own exchange; to be removed once they are gone.',
        help='Listen on the topic in [DEFAULT] control_exchange too. '
        'Agents and callers now use an exchange of their own, '
        '"image-agent", whatever the caller\'s control_exchange (Nova\'s '
        'is "nova"); callers of earlier versions still send to their '
        'control_exchange. Upgrade the agents first, then the callers, '
        'then set this to false.',
    ),
]

# The deadline check of requests (image_agent.deadline).
deadline_opts = [
    cfg.FloatOpt(
        'clock_skew',
        default=1.0,
        min=0,
        help='Seconds by which the clocks of callers and agents may differ. '
        'Every request says when it was sent and how long its caller waits '
        'for it to start; the agent refuses to start one that waited longer '
        'by more than this (its caller has given up on it). Larger values '
        'tolerate badly synchronised clocks but let a transfer start up to '
        'that much after its caller stopped waiting; keep clocks in sync '
        '(NTP) and this small.',
    ),
]

path_opts = [
    cfg.ListOpt(
        'download_roots',
        default=[],
        help='Absolute directories under which downloads may be written. '
        'Nothing outside them is ever written; symbolic links and ".." that '
        'lead outside are refused. Empty: downloads to local paths are '
        'refused.',
    ),
    cfg.ListOpt(
        'upload_roots',
        help='Absolute directories from which image data may be uploaded '
        '(regular files only; never the image cache). Unset: the download '
        'roots.',
    ),
    cfg.StrOpt(
        'file_mode',
        default='0600',
        regex=r'^0?[0-7]{3,4}$',
        help='Permission bits of downloaded files, in octal. The default '
        'keeps images private to the agent\'s user; to let a consumer '
        '(nova, cinder) read them, set file_group to its group and this '
        'to 0640.',
    ),
    cfg.StrOpt(
        'file_group',
        help='Group (name or id) given to downloaded files, typically the '
        'group of the service that reads them (nova, cinder); the agent\'s '
        'user must be a member. Unset: the agent\'s own group.',
    ),
    cfg.BoolOpt(
        'direct_io',
        default=False,
        help='Write downloads with O_DIRECT where the filesystem allows it '
        '(every full 4 MiB buffer; the tail of an image goes through the '
        'page cache): the disk takes the bytes from the agent\'s buffers '
        'without a copy into the page cache, which saves CPU time, and a '
        'large image does not push other files out of the cache. Not for '
        'filesystems whose direct I/O is slow (some network filesystems).',
    ),
    cfg.IntOpt(
        'max_concurrent_downloads',
        default=4,
        min=1,
        help='Downloads running at once; further downloads wait for a slot. '
        'Two requests for the same image to the same path share one '
        'transfer.',
    ),
    cfg.IntOpt(
        'max_concurrent_uploads',
        default=4,
        min=1,
        help='Uploads from local paths running at once; further uploads '
        'wait for a slot.',
    ),
    cfg.IntOpt(
        'max_waiting_transfers',
        default=32,
        min=0,
        help='Transfer calls (downloads, uploads from a path, pre-caching, '
        'and calls that join a transfer another call started) in the agent '
        'at once, running or waiting for a slot, are at most '
        'max_concurrent_downloads + max_concurrent_uploads + this; one more '
        'is refused at once with AgentBusy. Each such call holds an RPC '
        'executor thread: the agent raises [DEFAULT] '
        'executor_thread_pool_size to that sum plus 16, so that ping, show '
        'and the other calls always find a thread.',
    ),
    cfg.IntOpt(
        'free_space_margin_mb',
        default=64,
        min=0,
        help='Space, in MiB, that must remain free on a filesystem after '
        'the space reserved for every running transfer on it (each '
        'reserves its image size before its first byte; a cache fill and '
        'the copy made from it reserve it twice).',
    ),
    cfg.IntOpt(
        'transfer_niceness',
        default=10,
        min=0,
        max=19,
        help='Niceness added to the threads that receive, hash and write a '
        'download (Linux sets it per thread). They keep whole cores busy '
        'for as long as a download lasts; with 10, the agent\'s RPC calls '
        '(ping, show, the heartbeats of long calls) and the other services '
        'of the host go first when the CPUs are all busy, and downloads '
        'take what is left. 0 runs them like everything else.',
    ),
    cfg.FloatOpt(
        'progress_interval',
        default=10.0,
        min=0,
        help='Seconds between two "image.download.progress" notifications '
        'of a running download (bytes written, size, duration, rate in '
        'bytes/s). 0 sends none; start, end and error '
        'notifications are always sent when notifications are enabled.',
    ),
    cfg.IntOpt(
        'orphan_scan_depth',
        default=4,
        min=0,
        help='How many directory levels below each download root are '
        'scanned at start for temporary files left by a crash (they are '
        'removed). 0 scans only the roots themselves.',
    ),
    cfg.IntOpt(
        'drain_timeout',
        default=45,
        min=0,
        help='On SIGTERM, seconds to let running calls finish before the '
        'transfers still running are cancelled (their callers get an '
        'error, their temporary files are removed). Keep it below '
        '[DEFAULT] graceful_shutdown_timeout.',
    ),
]

cache_opts = [
    cfg.StrOpt(
        'cache_dir',
        mutable=True,
        help='Absolute directory of the local image cache, inside one of '
        'the download roots (created if missing). Cached images are kept '
        'by id and verified hash; a download of a cached image is a local '
        'copy, checked against the hash again, without Glance traffic. '
        'Pre-caching fills it. Unset: no cache. SIGHUP applies a change '
        '(the worker restarts with it).',
    ),
    cfg.IntOpt(
        'cache_max_size',
        default=10240,
        mutable=True,
        min=0,
        help='Size limit of the image cache, in MiB (default 10 GiB). Least '
        'recently used images are evicted to make room for new ones; an '
        'image being read is never evicted. The cache shares its '
        'filesystem with the download roots (often the instances\' disks): '
        '0, no limit, lets pre-caching fill that filesystem up to '
        'free_space_margin_mb.',
    ),
]

# What a download's bytes may be (image_agent.formats).
NOVA_DISK_FORMATS = [
    'raw',
    'qcow2',
    'vmdk',
    'vhd',
    'vhdx',
    'vdi',
    'iso',
    'gpt',
    'ami',
    'aki',
    'ari',
]

format_opts = [
    cfg.BoolOpt(
        'inspect_formats',
        default=True,
        help='Inspect every image while it is downloaded (oslo.utils\' '
        'format inspector, no second read): its content must be the format '
        'its disk_format says ("raw": no other known format; a GPT or MBR '
        'disk passes as raw) and pass that format\'s safety checks (no '
        'qcow2 backing or external data file, no VMDK extent, parent or '
        'subformat that reads other files...); otherwise the download fails '
        'with ImageUnacceptable and nothing is written. UNSAFE when false: '
        'a qcow2 or VMDK that names a host file such as /etc/shadow is then '
        'written as it is, and whoever hands it to qemu (the hypervisor, '
        'qemu-img, Nova, Cinder) may read that file into a guest '
        '(CVE-2024-32498). Turn it off only for a deployment whose '
        'consumers inspect every image themselves.',
    ),
    cfg.ListOpt(
        'disk_formats_allowed',
        default=NOVA_DISK_FORMATS,
        help='The disk_format values of the images the agent downloads '
        '(with inspect_formats); any other is refused before a byte is '
        'fetched. The default is what Nova accepts: the formats oslo.utils '
        'can inspect whose safety checks can pass, and the AMI formats '
        '(ami, aki, ari: their content must pass the safety checks of '
        'whatever format it is).',
    ),
    cfg.IntOpt(
        'qemu_img_address_space_mb',
        default=1024,
        min=16,
        help='Address space limit, in MiB, of the qemu-img processes the '
        'agent runs (info, and convert for downloads with convert_to and '
        'uploads with convert_from), as Nova and Cinder limit qemu-img '
        'info: a crafted image cannot make it take the host\'s memory. A '
        'process that reaches it fails with ConversionLimitExceeded.',
    ),
    cfg.IntOpt(
        'qemu_img_cpu_seconds',
        default=1800,
        min=1,
        help='CPU time limit, in seconds, of one qemu-img convert (qemu-img '
        'info gets 30 s, as in Nova). Converting takes about 1 CPU second '
        'per GiB here; a crafted image that would keep a core busy is '
        'killed at the limit (ConversionLimitExceeded), with nothing left '
        'behind.',
    ),
    cfg.StrOpt(
        'conversion_dir',
        help='Absolute directory of the private temporary directories in '
        'which uploads with convert_from are converted before they are '
        'sent (each needs room for the converted image). Unset: the '
        'system\'s temporary directory.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    shared.register_group(conf, agent_group)
    conf.register_opts(_all_opts(), group=agent_group)


def _all_opts() -> list[cfg.Opt]:
    return rpc_opts + deadline_opts + path_opts + cache_opts + format_opts


def list_opts() -> dict:
    return {agent_group: _all_opts()}
