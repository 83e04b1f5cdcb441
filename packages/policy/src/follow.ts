// followTable lives in @cordon/bus beside readTable; re-exported here for the views' users.
export { followTable, type TableFollower } from '@cordon/bus';
