export { Bus, connectBus, type ConnectBusOptions } from './connect.js';
