import { defineError } from '@cordon/runtime';

/**
 * Every way a rule-set update or lookup fails, declared once. An update that fails with any
 * of them has left the installed set as it was.
 */
export const ERR_RULES_USAGE = defineError(
  'CORDON_ERR_RULES_USAGE',
  (detail: string) => `${detail}; run "cordon rules update --help" for usage`,
);

/** The source could not be read: network error, HTTP status, missing file, timeout. */
export const ERR_RULES_FETCH = defineError(
  'CORDON_ERR_RULES_FETCH',
  (source: string, detail: string) =>
    `cannot fetch ${source}: ${detail}; check the URL or path (the installed set is unchanged)`,
);

/** Over a size limit: the download, the unpacked archive (a gzip bomb stops here), or the entry count. */
export const ERR_RULES_TOO_LARGE = defineError(
  'CORDON_ERR_RULES_TOO_LARGE',
  (source: string, detail: string) =>
    `${source} is refused: ${detail}; raise the limit with its flag if the source is trusted and really this large (the installed set is unchanged)`,
);

/** The archive's digest differs from the pinned --sha256 or from the checksum file published beside it. */
export const ERR_RULES_CHECKSUM = defineError(
  'CORDON_ERR_RULES_CHECKSUM',
  (source: string, detail: string) =>
    `${source} failed verification: ${detail}; the download is corrupt or was tampered with (the installed set is unchanged)`,
);

/** An entry that would write outside the set's folder or is not a plain file: traversal, absolute path, link out of the tree, device. */
export const ERR_RULES_UNSAFE_ENTRY = defineError(
  'CORDON_ERR_RULES_UNSAFE_ENTRY',
  (source: string, entry: string, detail: string) =>
    `${source} is refused: entry "${entry}" ${detail} (nothing was unpacked; the installed set is unchanged)`,
);

/** Not a tar, gzip'd tar or .rules file, or a malformed one. */
export const ERR_RULES_ARCHIVE = defineError(
  'CORDON_ERR_RULES_ARCHIVE',
  (source: string, detail: string) =>
    `${source} is not a usable rule archive: ${detail} (the installed set is unchanged)`,
);

export const ERR_RULES_INSTALL = defineError(
  'CORDON_ERR_RULES_INSTALL',
  (dir: string, detail: string) => `cannot install into ${dir}: ${detail} (the installed set is unchanged)`,
);

/** Another `cordon rules update` of the same set holds its lock. */
export const ERR_RULES_BUSY = defineError(
  'CORDON_ERR_RULES_BUSY',
  (name: string, lock: string) =>
    `another update of rule set "${name}" is running (lock ${lock}); wait for it, or remove the lock file if no update is running`,
);

/** A policy (or a command) names a set that `cordon rules update` has not installed. */
export const ERR_RULES_NOT_INSTALLED = defineError(
  'CORDON_ERR_RULES_NOT_INSTALLED',
  (name: string, rulesDir: string) =>
    `rule set "${name}" is not installed in ${rulesDir}; run "cordon rules update" (ET Open, as et-open) or "cordon rules update --source URL|FILE --name ${name}", with the same --data-dir`,
);

/** An installed set whose files no longer match its manifest (edited or damaged on disk). */
export const ERR_RULES_CORRUPT = defineError(
  'CORDON_ERR_RULES_CORRUPT',
  (dir: string, detail: string) =>
    `the installed rule set in ${dir} is damaged: ${detail}; run "cordon rules update" again to reinstall it`,
);
