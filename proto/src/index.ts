export * from './gen/bulwark/events/v1/event_pb.js';
