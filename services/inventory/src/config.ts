import { z } from 'zod';

/** One platform to follow. The URL names its kind: vsphere+https://…/sdk, libvirt+qemu:///system, file:///…yaml. */
export const sourceSchema = z
  .object({
    url: z
      .string()
      .regex(
        /^(vsphere\+https|libvirt\+[a-z0-9+]+|file):/,
        'a source is vsphere+https://HOST/sdk, libvirt+qemu:///system (or +ssh, +tcp), or file:///PATH',
      ),
    /** vSphere: KEY=VALUE file with CORDON_VSPHERE_USERNAME and CORDON_VSPHERE_PASSWORD (else the environment). */
    credentialsFile: z.string().min(1).optional(),
    /** vSphere: PEM of the CA that signed the server's certificate. */
    caFile: z.string().min(1).optional(),
    /** vSphere: accept any certificate (labs only; warns). */
    insecure: z.boolean().default(false),
    /** file: how often the file is looked at. */
    pollMs: z.number().int().positive().default(1000),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (/^[a-z+]+:\/\/[^/]*@/.test(s.url))
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message: 'credentials do not belong in the URL: use credentialsFile or the environment',
      });
  });

export type SourceConfig = z.infer<typeof sourceSchema>;

export const inventoryConfigSchema = z
  .object({
    sources: z.array(sourceSchema).min(1),
  })
  .strict();

export type InventoryConfig = z.infer<typeof inventoryConfigSchema>;
