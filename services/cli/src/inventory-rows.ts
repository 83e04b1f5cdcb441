// The rows live in @cordon/policy, shared with the manager.
export { assignmentsOf, rowsOfTopic, vmRow, vmRows, type AssignmentRow, type VmRow } from '@cordon/policy';
