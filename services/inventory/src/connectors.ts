import type { Context } from '@cordon/runtime';
import type { PlatformConnector } from '@cordon/platform';
import { fromUrl as vsphereFromUrl } from '@cordon/vsphere';
import type { SourceConfig } from './config.js';
import { FileConnector } from './connector-file.js';
import { ERR_INVENTORY_SOURCE } from './errors.js';

/** The connector a source URL names. Credentials come from the source's file or the environment, never the URL. */
export function connectorFor(source: SourceConfig, ctx: Context, env: NodeJS.ProcessEnv = process.env): PlatformConnector {
  const url = source.url;
  if (url.startsWith('vsphere+https://')) {
    return vsphereFromUrl(url, {
      ctx,
      env,
      insecure: source.insecure,
      ...(source.credentialsFile ? { credentialsFile: source.credentialsFile } : {}),
      ...(source.caFile ? { caFile: source.caFile } : {}),
    });
  }
  if (url.startsWith('file:')) return new FileConnector({ url, ctx, pollMs: source.pollMs });
  if (url.startsWith('libvirt+')) throw ERR_INVENTORY_SOURCE(url, 'the libvirt connector is not part of this build');
  throw ERR_INVENTORY_SOURCE(url, 'unknown kind of source (vsphere+https://, libvirt+…, file://)');
}
