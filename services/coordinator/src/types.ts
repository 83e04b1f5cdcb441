import type { Assignment, CaptureStatus } from '@cordon/schemas';

export type { Assignment, CaptureStatus };
export type AssignmentMode = Assignment['mode'];
