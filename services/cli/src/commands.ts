import type { CommandSpec } from './args.js';
import { DATA_FLAGS, FLAGS, LOG_FLAGS } from './cli-context.js';
import {
  alertsTailCommand,
  blocksListCommand,
  blocksLiftCommand,
  inventoryApplyCommand,
  policyApplyCommand,
  queryCommand,
  replayCommand,
  usersAddCommand,
} from './data-commands.js';
import { MANAGER_FLAGS } from './manager-client.js';
import { runCommand, upCommand } from './instance.js';
import { assignmentsCommand, inventoryWatchCommand, SOURCE_FLAGS, vmsCommand } from './vms.js';
import { recommendCommand } from './recommend.js';
import {
  RULES_LIST_DESCRIPTION,
  RULES_UPDATE_DESCRIPTION,
  RULES_UPDATE_FLAGS,
  rulesListCommand,
  rulesUpdateCommand,
} from './rules.js';
import { exportCommand } from './export-command.js';
import { quarantineListCommand, quarantineRestoreCommand, scanCommand } from './malware-commands.js';
import { evidenceCommand } from './evidence-command.js';
import { schemasRegisterCommand, schemasServeCommand } from './schemas-commands.js';
import {
  agentsTokenCommand,
  hostsTokenCommand,
  dpiCommand,
  ENROLL_SECRET_ENV,
  logtestCommand,
  proctestCommand,
  rulesCheckCommand,
  topicsApplyCommand,
} from './tool-commands.js';

/**
 * Every command of `cordon`, declared once: the parser, the validation, `--help` of each
 * command and subcommand, the usage text and the "did you mean" suggestions all come from
 * this table (args.ts reads it). A new command is an entry here and its handler.
 */

const WHILE_RUNNING =
  'While "cordon up" runs on the data dir, this goes through its control socket (<data dir>/control.sock); while it is still starting, the command waits for it (--wait).';

const APPLY_FLAGS = [
  { name: 'dry-run', type: 'boolean', help: 'validate the file and say how many records would be written; write none' },
] as const;

const QUARANTINE_DIR = {
  name: 'dir',
  type: 'string',
  value: 'DIR',
  env: 'CORDON_QUARANTINE_DIR',
  default: 'agent-state/quarantine',
  help: "the agent's quarantine directory (<its stateDir>/quarantine)",
} as const;

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'up',
    summary: 'every service in one process (embedded bus and ClickHouse), with a demo; runs until Ctrl-C',
    description:
      'Starts the bus, ClickHouse and every service (or those of --services), opens the control socket\n' +
      '<data dir>/control.sock for commands from other terminals, runs the demo (a capture with attacks,\n' +
      'an SSH brute force; --no-demo skips it) and prints what it found. Then runs until SIGINT/SIGTERM\n' +
      '(a second signal exits at once), or stops after the demo with --exit.',
    flags: [
      {
        name: 'pcap',
        type: 'string',
        value: 'FILE',
        help: "replay this capture instead of the demo's (demo rules and every installed rule set, detect mode)",
      },
      { name: 'no-demo', type: 'boolean', help: 'skip the demo' },
      { name: 'exit', type: 'boolean', help: 'stop after the demo instead of running until Ctrl-C' },
      {
        name: 'services',
        type: 'string',
        value: 'A,B,…',
        defaultText: 'every service the configuration enables',
        help: 'run only these services ("cordon help" lists them)',
      },
      FLAGS.config,
      FLAGS.dataDir,
      FLAGS.brokers,
      FLAGS.kafkaClientConfig,
      FLAGS.clickhouseUrl,
      FLAGS.metricsAddr,
      FLAGS.stageModule,
      {
        ...FLAGS.wait,
        help: 'when another cordon process holds the data dir for a moment (a command run before this started), wait this long for it',
      },
      ...LOG_FLAGS,
    ],
    run: upCommand,
  },
  {
    name: 'run',
    summary: 'one service against Kafka and ClickHouse',
    args: [{ name: 'SERVICE', required: true, help: 'the service to run ("cordon help" lists them)' }],
    flags: [
      {
        name: 'exit-when-idle',
        type: 'boolean',
        help: 'stop once every input is consumed up to the end seen at start (batch jobs, tests)',
      },
      FLAGS.config,
      FLAGS.dataDir,
      FLAGS.brokers,
      FLAGS.kafkaClientConfig,
      FLAGS.clickhouseUrl,
      FLAGS.metricsAddr,
      FLAGS.stageModule,
      {
        ...FLAGS.wait,
        help: 'with the embedded bus: when another cordon process holds the data dir for a moment, wait this long for it',
      },
      ...LOG_FLAGS,
    ],
    run: runCommand,
  },
  {
    name: 'replay',
    summary: 'publish a capture (pcap or pcapng) to the packets topic',
    description: `A progress bar with rate and ETA is drawn on a terminal for replays longer than a second. ${WHILE_RUNNING}`,
    flags: [
      { name: 'pcap', type: 'string', value: 'FILE', required: true, help: 'the capture' },
      {
        name: 'sensor',
        type: 'string',
        value: 'NAME',
        defaultText: 'replay:<file name>',
        help: 'the sensor name on every packet batch',
      },
      { name: 'vm', type: 'string', value: 'VM', help: 'the VM the capture was taken for' },
      {
        name: 'batch',
        type: 'int',
        value: 'N',
        min: 1,
        max: 65536,
        default: 256,
        help: 'packets per batch (per partition)',
      },
      ...DATA_FLAGS,
    ],
    run: replayCommand,
  },
  {
    name: 'topics',
    summary: 'the bus topics',
    subcommands: [
      {
        name: 'apply',
        summary: 'create every topic with its partitions, compaction and retention',
        flags: [FLAGS.config, FLAGS.dataDir, FLAGS.brokers, FLAGS.kafkaClientConfig, ...LOG_FLAGS],
        run: topicsApplyCommand,
      },
    ],
  },
  {
    name: 'query',
    summary: 'run one read-only SQL statement on ClickHouse and print the rows',
    description:
      "One statement that reads (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS), run with ClickHouse's\n" +
      `readonly = 1: writes, DDL and a second statement are refused with a coded error. ${WHILE_RUNNING}`,
    args: [{ name: 'SQL', required: true, help: 'the statement, quoted' }],
    flags: [FLAGS.format, ...DATA_FLAGS],
    run: queryCommand,
  },
  {
    name: 'policy',
    summary: 'detection and blocking policy',
    subcommands: [
      {
        name: 'apply',
        summary:
          'validate a policy file (rule files and sets, detect/prevent, block TTLs) and write it to the policy topic',
        description: `Records equal to what the topic holds are not written again. ${WHILE_RUNNING}`,
        args: [{ name: 'FILE', required: true, help: 'the policy (YAML); rules/demo/policy.yaml is an example' }],
        flags: [
          ...APPLY_FLAGS,
          {
            name: 'by',
            type: 'string',
            value: 'NAME',
            defaultText: 'cli:$USER',
            help: 'who applied it, recorded with the policy',
          },
          ...MANAGER_FLAGS,
          ...DATA_FLAGS,
        ],
        run: policyApplyCommand,
      },
    ],
  },
  {
    name: 'inventory',
    summary: 'hosts and VMs',
    subcommands: [
      {
        name: 'apply',
        summary: 'validate an inventory file (hosts, VMs, MACs, IPs) and write it to the inventory topic',
        description: `Records equal to what the topic holds are not written again. ${WHILE_RUNNING}`,
        args: [{ name: 'FILE', required: true, help: 'the inventory (YAML); rules/demo/inventory.yaml is an example' }],
        flags: [
          ...APPLY_FLAGS,
          { name: 'prune', type: 'boolean', help: 'also remove hosts and VMs that the file does not name' },
          ...DATA_FLAGS,
        ],
        run: inventoryApplyCommand,
      },
      {
        name: 'watch',
        summary: "a platform's VMs now, then its changes and lifecycle events as they come (JSON lines), until Ctrl-C",
        description:
          'Each line has a "type": vm (id, name, host, power, guest_os, macs, ips, snapshot, source), removed,\n' +
          "host, or event (kind, vm, host, fromHost, snapshot, sourceVm, and the platform's own id and time).\n" +
          'Credentials never come from the URL or the command line.',
        flags: [
          ...SOURCE_FLAGS,
          { name: 'once', type: 'boolean', help: "print the platform's VMs now and exit" },
          { name: 'follow', type: 'boolean', help: 'follow changes and events (the default without --once)' },
          { ...FLAGS.format, default: 'json' },
          ...LOG_FLAGS,
        ],
        run: inventoryWatchCommand,
      },
    ],
  },
  {
    name: 'assignments',
    summary: 'who protects a VM (its watchdog or its agent), and with --history why each change happened',
    description: `The coordinator's assignments of the VM: mode, host, agent, enforcer, the hand-off's time boundary and the reason. ${WHILE_RUNNING}`,
    flags: [
      { name: 'vm', type: 'string', value: 'ID', required: true, help: 'the VM (its inventory id)' },
      { name: 'history', type: 'boolean', help: 'every assignment still on the topic, oldest first' },
      FLAGS.format,
      ...DATA_FLAGS,
    ],
    run: assignmentsCommand,
  },
  {
    name: 'vms',
    summary:
      'the VMs: id, name, host, power, guest OS, MACs, IPs — from the platforms named, else from the inventory topic',
    description: `Without --source, the inventory topic as the inventory stage (or "cordon inventory apply") wrote it. ${WHILE_RUNNING}`,
    flags: [...SOURCE_FLAGS, FLAGS.format, ...DATA_FLAGS],
    run: vmsCommand,
  },
  {
    name: 'recommend',
    summary: 'the rules a VM needs from what it runs (guest OS, listening services, flows), each rule with its reason',
    description:
      'The newest recommendation the recommend stage published on cordon.recommendations.v1 for the VM: its\n' +
      "evidence (guest OS, services from the agent's netconf and from flows, outbound connections), the rules\n" +
      'of the policy that fit (+ to add, = already enabled) and those to drop, grouped by reason (--format json:\n' +
      `one object with every rule and its reason). recommend.autoApply writes it into the policy. ${WHILE_RUNNING}`,
    flags: [
      { name: 'vm', type: 'string', value: 'ID', required: true, help: 'the VM, by inventory id or name' },
      {
        ...FLAGS.format,
        help: 'table: the evidence and the rules grouped by reason; json: one JSON object with every rule',
      },
      {
        name: 'rule-set',
        type: 'string',
        value: 'NAME',
        help: 'only the rules of this rule file or set (e.g. et-open, demo.rules)',
      },
      ...DATA_FLAGS,
    ],
    run: recommendCommand,
  },
  {
    name: 'blocks',
    summary: 'the blocks in force, and lifting one',
    subcommands: [
      {
        name: 'list',
        summary:
          'the blocks in force: the newest decision per enforcer and target on the compacted blocks topic, not expired, not lifted',
        description: WHILE_RUNNING,
        flags: [
          { ...FLAGS.format, help: 'table: aligned columns; json: one JSON object a block' },
          { name: 'all', type: 'boolean', help: 'expired blocks too' },
          ...DATA_FLAGS,
        ],
        run: blocksListCommand,
      },
      {
        name: 'lift',
        summary: 'lift a block: a tombstone on its key (enforcer|target), which the watchdog or agent follows',
        description: `Who lifted it and why travel in the tombstone's headers and in an audit event on cordon.audit.v1. ${WHILE_RUNNING}`,
        args: [{ name: 'TARGET', required: true, help: 'the blocked address, as "cordon blocks list" shows it' }],
        flags: [
          {
            name: 'enforcer',
            type: 'string',
            value: 'E',
            defaultText: 'every enforcer that blocks TARGET',
            help: 'only the block of this enforcer (watchdog:<host> or agent:<id>)',
          },
          { name: 'reason', type: 'string', value: 'TEXT', help: 'why, for the audit trail' },
          {
            name: 'by',
            type: 'string',
            value: 'NAME',
            defaultText: 'cli:$USER',
            help: 'who lifted it, for the audit trail',
          },
          ...MANAGER_FLAGS,
          ...DATA_FLAGS,
        ],
        run: blocksLiftCommand,
      },
    ],
  },
  {
    name: 'alerts',
    summary: 'the alerts as they are published',
    subcommands: [
      {
        name: 'tail',
        summary: 'the alerts published recently, and with --follow every new one until Ctrl-C',
        description: `From the alerts topic, by the time each alert was published. ${WHILE_RUNNING}`,
        flags: [
          { name: 'follow', short: 'f', type: 'boolean', help: 'keep printing new alerts until Ctrl-C' },
          {
            name: 'since',
            type: 'duration',
            value: 'DURATION',
            default: '1h',
            help: 'how far back to start: 30s, 15m, 2h, 1d',
          },
          { ...FLAGS.format, help: 'table: one aligned line an alert; json: one JSON object an alert' },
          ...DATA_FLAGS,
        ],
        run: alertsTailCommand,
      },
    ],
  },
  {
    name: 'export',
    summary: 'alerts and flows as Suricata EVE JSON, or alerts, flows, file and audit events as OCSF JSON lines',
    description:
      "eve: an eve.json that Suricata tooling ingests (event_type alert and flow, Suricata's field names and\n" +
      'timestamps, community_id). ocsf: OCSF 1.3 (Detection Finding 2004, Authentication 3002, Network Activity\n' +
      `4001, File System Activity 1001, API Activity 6003), as the notify stage puts on cordon.siem.v1. ${WHILE_RUNNING}`,
    flags: [
      {
        name: 'format',
        type: 'string',
        choices: ['eve', 'ocsf'],
        default: 'eve',
        help: 'eve: Suricata EVE JSON; ocsf: OCSF JSON',
      },
      { name: 'follow', short: 'f', type: 'boolean', help: 'keep writing new records until Ctrl-C' },
      {
        name: 'since',
        type: 'duration',
        value: 'DURATION',
        defaultText: 'everything the topics hold',
        help: 'only records published this recently: 30s, 15m, 2h, 1d',
      },
      {
        name: 'topic',
        type: 'string',
        value: 'NAME',
        multiple: true,
        defaultText: 'every topic of the format',
        help: 'only this topic (alerts, flows, fim, audit)',
      },
      { name: 'output', short: 'o', type: 'string', value: 'FILE', defaultText: 'stdout', help: 'append to this file' },
      {
        name: 'rotate-mb',
        type: 'int',
        value: 'N',
        min: 1,
        max: 1_000_000,
        help: 'with --output: rotate the file at N MiB (FILE.1 … FILE.5 kept)',
      },
      ...DATA_FLAGS,
    ],
    run: exportCommand,
  },
  {
    name: 'evidence',
    summary: "a pcap of an alert's flow: its packets from the packets topic",
    description:
      "The alert's flow is found by its Community ID on the partition its packets are keyed to; the packets topic keeps\n" +
      `a day of packets (its retention), so evidence is there for alerts of the last day. ${WHILE_RUNNING}`,
    flags: [
      { name: 'alert', type: 'string', value: 'ID', required: true, help: 'the alert id (alerts.alert_id)' },
      { name: 'output', short: 'o', type: 'string', value: 'FILE', required: true, help: 'the pcap to write' },
      {
        name: 'before',
        type: 'duration',
        value: 'DURATION',
        default: '10m',
        help: 'packets of the flow from this long before the alert',
      },
      { name: 'after', type: 'duration', value: 'DURATION', default: '1m', help: 'and up to this long after it' },
      ...DATA_FLAGS,
    ],
    run: evidenceCommand,
  },
  {
    name: 'schemas',
    summary: "Cordon's record schemas for Kafka tooling: a schema registry's read API, or registration into one",
    subcommands: [
      {
        name: 'serve',
        summary:
          "serve the Confluent schema registry read API over Cordon's schemas (subjects <topic>-value, the manifest's ids)",
        description:
          'GET /subjects, /subjects/{s}/versions, /subjects/{s}/versions/{v|latest}[/schema], /schemas/ids/{id}[/schema|/versions|/subjects],\n' +
          '/schemas/types, /config, /mode, and POST /subjects/{s} (lookup). Writes are refused: the schemas live in schemas/avro.',
        flags: [
          {
            name: 'listen',
            type: 'string',
            value: 'HOST:PORT',
            default: '127.0.0.1:8081',
            help: 'where to listen (port 0: any free port; the URL is printed)',
          },
          ...LOG_FLAGS,
        ],
        run: schemasServeCommand,
      },
      {
        name: 'register',
        summary:
          "register every topic's schema versions in a Confluent-compatible registry, with Cordon's ids (IMPORT mode)",
        flags: [
          {
            name: 'registry',
            type: 'string',
            value: 'URL',
            required: true,
            env: 'CORDON_SCHEMA_REGISTRY_URL',
            help: 'the registry, e.g. http://registry:8081',
          },
          ...LOG_FLAGS,
        ],
        run: schemasRegisterCommand,
      },
    ],
  },
  {
    name: 'agents',
    summary: 'in-guest agents',
    subcommands: [
      {
        name: 'token',
        summary: 'an enrollment token for the agent of a VM',
        description: `Signed with ${ENROLL_SECRET_ENV} (hex, 32 bytes or more) when it is set, else with a key made once in <data dir>/secrets/enroll.key.`,
        flags: [
          { name: 'vm', type: 'string', value: 'VM', required: true, help: 'the VM whose agent the token enrolls' },
          {
            name: 'ttl-hours',
            type: 'number',
            value: 'N',
            min: 0,
            max: 720,
            default: 24,
            help: 'how long the token is valid',
          },
          FLAGS.config,
          FLAGS.dataDir,
          ...LOG_FLAGS,
        ],
        run: agentsTokenCommand,
      },
    ],
  },
  {
    name: 'hosts',
    summary: 'hypervisor hosts and their watchdogs',
    subcommands: [
      {
        name: 'token',
        summary: "an enrollment token for a host's watchdog (it signs its records with the key it registers)",
        description: `Signed with ${ENROLL_SECRET_ENV} (hex, 32 bytes or more) when it is set, else with a key made once in <data dir>/secrets/enroll.key. Give it to the watchdog as watchdog.enroll.token / tokenFile, CORDON_HOST_TOKEN or CORDON_HOST_TOKEN_FILE.`,
        flags: [
          {
            name: 'host',
            type: 'string',
            value: 'HOST',
            required: true,
            help: 'the host whose watchdog the token enrolls',
          },
          {
            name: 'ttl-hours',
            type: 'number',
            value: 'N',
            min: 0,
            max: 720,
            default: 24,
            help: 'how long the token is valid',
          },
          FLAGS.config,
          FLAGS.dataDir,
          ...LOG_FLAGS,
        ],
        run: hostsTokenCommand,
      },
    ],
  },
  {
    name: 'users',
    summary: "the manager's users",
    subcommands: [
      {
        name: 'add',
        summary: 'create a manager user (the first admin: cordon users add alice --role admin < password-file)',
        description: `The password is read from --password-file, else from stdin (at least 12 characters), hashed with the manager secret (<data dir>/secrets/manager.key or CORDON_MANAGER_SECRET) and written to the policy topic with an audit event. An existing user is left as it is: change users in the console. ${WHILE_RUNNING}`,
        args: [{ name: 'NAME', required: true, help: 'the user name' }],
        flags: [
          {
            name: 'role',
            type: 'string',
            value: 'ROLE',
            required: true,
            help: 'admin, policy-editor, operator, analyst, auditor, or a custom role',
          },
          {
            name: 'password-file',
            type: 'string',
            value: 'FILE',
            defaultText: 'stdin',
            help: 'a file holding the password',
          },
          { name: 'group', type: 'string', value: 'GROUP', multiple: true, help: 'a VM group the user is scoped to' },
          ...DATA_FLAGS,
        ],
        run: usersAddCommand,
      },
    ],
  },
  {
    name: 'dpi',
    summary: 'the native DPI engine on a capture: one EVE JSON line per alert',
    flags: [
      { name: 'rules', type: 'string', value: 'FILE', multiple: true, required: true, help: 'a Suricata rule file' },
      { name: 'pcap', type: 'string', value: 'FILE', required: true, help: 'the capture (pcap or pcapng)' },
      { name: 'no-checksum-validation', type: 'boolean', help: "do not validate checksums (Suricata's -k none)" },
      {
        name: 'encryption-handling',
        type: 'string',
        value: 'default|full',
        help: "TLS/SSH past the handshake: content rules stop there (default, Suricata's) or go on (full)",
      },
      { name: 'stats', type: 'boolean', help: 'print alert and packet counts to stderr at the end' },
    ],
    run: dpiCommand,
  },
  {
    name: 'rules',
    summary: 'rule files and rule sets',
    subcommands: [
      {
        name: 'check',
        summary: 'load Suricata rule files; one line per rule that fails, then {"rules","loaded","failed"}',
        args: [{ name: 'FILE', required: true, variadic: true, help: 'rule files' }],
        run: rulesCheckCommand,
      },
      {
        name: 'update',
        summary: 'download, verify and install rule sets (default: Emerging Threats Open)',
        description: RULES_UPDATE_DESCRIPTION,
        flags: [
          ...RULES_UPDATE_FLAGS,
          { ...FLAGS.dataDir, help: 'where sets are installed, under rules/' },
          FLAGS.config,
          ...LOG_FLAGS,
        ],
        run: rulesUpdateCommand,
      },
      {
        name: 'list',
        summary: 'the installed rule sets: version, source, files, rules, sha256',
        description: RULES_LIST_DESCRIPTION,
        flags: [FLAGS.format, { ...FLAGS.dataDir, help: 'where sets are installed, under rules/' }, FLAGS.config],
        run: rulesListCommand,
      },
    ],
  },
  {
    name: 'scan',
    summary: 'YARA rules over files: one JSON line per match (path, rule, tags, sha256); exit 1 on a match',
    description:
      'Every regular file at and below each PATH (symlinks are not followed) is scanned with YARA-X:\n' +
      "Cordon's own rules (the EICAR test signature and a few others) unless --rules or --rule-set name\n" +
      'others. One JSON object a line per match on stdout; a summary and the files that could not be\n' +
      'scanned on stderr. Exit codes: 0 nothing matched, 1 something matched, 2 nothing matched but a\n' +
      'file or folder could not be scanned. A rule that does not compile is CORDON_ERR_NATIVE_YARA_RULE\n' +
      'with its file and line.',
    args: [{ name: 'PATH', required: true, variadic: true, help: 'files or folders' }],
    flags: [
      {
        name: 'rules',
        type: 'string',
        value: 'DIR',
        multiple: true,
        defaultText: "Cordon's own rules",
        help: 'folders (searched recursively) or files of YARA rules (.yar, .yara)',
      },
      {
        name: 'rule-set',
        type: 'string',
        value: 'NAME',
        multiple: true,
        help: 'the YARA files of a rule set installed by "cordon rules update" (with --data-dir)',
      },
      { ...FLAGS.dataDir, help: 'where "cordon rules update" installed the sets --rule-set names' },
      {
        name: 'max-file-mb',
        type: 'number',
        value: 'MB',
        default: 64,
        min: 0,
        help: 'larger files are not read (listed on stderr as skipped)',
      },
      { name: 'timeout-ms', type: 'int', value: 'MS', default: 30_000, min: 1, help: "a file's scan stops after this" },
      { name: 'threads', type: 'int', value: 'N', default: 2, min: 1, max: 4, help: 'files scanned at once' },
    ],
    run: scanCommand,
  },
  {
    name: 'quarantine',
    summary: "files the agent's anti-malware moved aside: list, restore",
    subcommands: [
      {
        name: 'list',
        summary: 'what is quarantined: id, original path, mode, sha256, the rules that matched, when',
        flags: [QUARANTINE_DIR, FLAGS.format],
        run: quarantineListCommand,
      },
      {
        name: 'restore',
        summary: 'put a quarantined file back, byte for byte, with its mode and owner',
        description:
          'Writes the file back to its original path (or --to) and removes it from quarantine. Nothing may\n' +
          'be at the target: a file or symlink there is neither replaced nor followed, and a folder on the\n' +
          'way that became a symlink is refused (restore with --to instead).',
        args: [{ name: 'ID', required: true, help: 'the id "cordon quarantine list" shows' }],
        flags: [
          QUARANTINE_DIR,
          { name: 'to', type: 'string', value: 'PATH', help: 'restore here instead of the original path (absolute)' },
        ],
        run: quarantineRestoreCommand,
      },
    ],
  },
  {
    name: 'logtest',
    summary: 'a log file through log inspection: one JSON line per detection',
    flags: [
      { name: 'log', type: 'string', value: 'FILE', required: true, help: 'the log file' },
      {
        name: 'rules',
        type: 'string',
        value: 'DIR',
        multiple: true,
        defaultText: 'the built-in rules',
        help: 'folders of Cordon or Sigma YAML rules, instead of the built-in ones',
      },
      { name: 'sigma', type: 'string', value: 'DIR', multiple: true, help: 'Sigma rule folders, added to the rules' },
      {
        name: 'year',
        type: 'int',
        value: 'YYYY',
        min: 1970,
        max: 9999,
        defaultText: "the file's modification year",
        help: 'the year of syslog stamps that have none',
      },
      {
        name: 'hint',
        type: 'string',
        value: 'PATH',
        defaultText: 'the file path',
        help: 'what kind of log it is, by a path such as /var/log/auth.log',
      },
      { name: 'quiet', type: 'boolean', help: 'print no detections (with --stats: just the counts)' },
      { name: 'stats', type: 'boolean', help: 'print rule, line and detection counts and the speed to stderr' },
      {
        name: 'explain',
        type: 'boolean',
        help: 'for every matched line: the decoder, its fields, the searches that matched and any never-flag entry that silenced it',
      },
      { name: 'line', type: 'int', value: 'N', min: 1, help: 'explain only line N (implies --explain)' },
      {
        name: 'fail2ban',
        type: 'string',
        value: 'DIR',
        help: 'a fail2ban configuration folder (such as /etc/fail2ban): its filter.d filters are loaded as rules',
      },
      {
        name: 'fail2ban-filter',
        type: 'string',
        value: 'NAME',
        multiple: true,
        defaultText: 'every filter that loads',
        help: 'with --fail2ban: only these filters',
      },
      { name: 'no-builtin', type: 'boolean', help: 'leave out the built-in rules (for example with --fail2ban alone)' },
      {
        name: 'no-coverage',
        type: 'boolean',
        help: 'no coverage summary (lines per decoder, unparsed shapes) on stderr',
      },
    ],
    run: logtestCommand,
  },
  {
    name: 'proctest',
    summary: 'recorded process events through the process rules: one JSON line per alert',
    flags: [
      {
        name: 'events',
        type: 'string',
        value: 'FILE',
        required: true,
        help: "process events, one JSON object a line (the agent's processRecord file)",
      },
      {
        name: 'rules',
        type: 'string',
        value: 'DIR',
        multiple: true,
        defaultText: 'the built-in rules',
        help: 'folders of Cordon or Sigma YAML rules, instead of the built-in ones',
      },
      {
        name: 'sigma',
        type: 'string',
        value: 'DIR',
        multiple: true,
        help: 'Sigma rule folders, added to the rules (their Linux process_creation rules load)',
      },
      { name: 'no-builtin', type: 'boolean', help: 'leave out the built-in rules' },
      { name: 'quiet', type: 'boolean', help: 'print no alerts (with --stats: just the counts)' },
      {
        name: 'stats',
        type: 'boolean',
        help: 'print rules loaded, refusals grouped by reason, events and alerts to stderr',
      },
    ],
    run: proctestCommand,
  },
  {
    name: 'help',
    summary: 'this list, or the help of one command ("cordon help blocks lift")',
    args: [{ name: 'COMMAND', variadic: true, help: 'a command and its subcommand' }],
  },
];
