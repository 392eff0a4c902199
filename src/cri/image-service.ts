/** The CRI's ImageService handlers over cri/images.ts (the shared image store and the one pull path). */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { asStream, unary, type Filter } from './grpc.js';
import type { Images } from './images.js';
import type { AuthConfig, ImageSpec } from './types.js';

export function imageHandlers(im: Images): UntypedServiceImplementation {
  return {
    ListImages: unary<Filter<{ image: ImageSpec | null }>>('ListImages', async (r) => im.list(r.filter)),
    StreamImages: asStream<Filter<{ image: ImageSpec | null }>>(
      'StreamImages',
      async (r) => im.list(r.filter),
      'images',
      'images',
    ),
    ImageStatus: unary<{ image: ImageSpec | null; verbose: boolean }>('ImageStatus', async (r) =>
      im.status(r.image, r.verbose),
    ),
    PullImage: unary<{ image: ImageSpec | null; auth: AuthConfig | null }>('PullImage', (r) =>
      im.pull(r.image, r.auth),
    ),
    RemoveImage: unary<{ image: ImageSpec | null }>('RemoveImage', (r) => im.remove(r.image)),
    ImageFsInfo: unary<object>('ImageFsInfo', async () => im.fsInfo()),
  };
}
