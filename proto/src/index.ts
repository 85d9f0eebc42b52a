export * from './gen/bulwark/events/v1/event_pb.js';
export * from './gen/bulwark/envelope/v1/frame_pb.js';
