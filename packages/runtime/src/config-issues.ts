/**
 * One wording for configuration errors everywhere: a validation issue (zod's shape, without
 * depending on zod) becomes "path: message", and unknown keys are named with their full path.
 */
export interface ConfigIssue {
  code: string;
  path: ReadonlyArray<string | number>;
  message: string;
  keys?: readonly string[];
}

export function describeConfigIssues(issues: readonly ConfigIssue[]): string {
  return issues
    .map((i) => {
      if (i.code === 'unrecognized_keys' && i.keys) {
        const names = i.keys.map((k) => `"${[...i.path, k].join('.')}"`).join(', ');
        return `unknown key${i.keys.length > 1 ? 's' : ''} ${names}`;
      }
      return `${i.path.join('.') || '(top level)'}: ${i.message}`;
    })
    .join('; ');
}
