"""The emulated Butlr GraphQL schema in SDL (kept in Python so it ships without package data)."""

# The webhook event types (butlr-api.md §5.2); the emulator delivers some (webhook_events.DELIVERED_TYPES).
EVENT_TYPES: tuple[str, ...] = (
    "DETECTIONS",
    "TRAFFIC",
    "FLOOR_OCCUPANCY",
    "ROOM_OCCUPANCY",
    "ZONE_OCCUPANCY",
    "FLOOR_OCCUPANCY_1MIN",
    "ROOM_OCCUPANCY_1MIN",
    "ZONE_OCCUPANCY_1MIN",
    "PIR_MOTION",
    "PIR_NO_MOTION",
    "SENSOR_HEALTH",
    "HIVE_HEALTH",
)

_SDL = """
# The emulated Butlr GraphQL schema (api/v3/graphql): the read side used by integrations plus the
# webhook mutations. Mixed casing is deliberate: it is the real API's.
scalar Time
scalar JSON

type Capacity { max: Int mid: Int }
type Area { value: Float unit: String }
type Address { lines: [String!] country: String }
type Metadata { created_at: Time updated_at: Time deleted_at: Time }

type Site {
  id: ID!
  name: String!
  timezone: String
  siteNumber: Int
  customID: String
  org_id: String
  butlrCode: String
  buildings: [Building!]!
}
type Sites { data: [Site!]! }

type Building {
  id: ID!
  name: String!
  site_id: String!
  site: Site
  customID: String
  building_number: Int
  buildingNumber: Int @deprecated(reason: "use building_number")
  capacity: Capacity!
  address: Address
  floors: [Floor!]!
  butlr_code: String
}
type Buildings { data: [Building!]! }

type Floor {
  id: ID!
  name: String!
  building_id: String!
  building: Building
  timezone: String
  floorNumber: Int
  customID: String
  installation_date: Int
  installation_status: String
  service_status: String
  capacity: Capacity!
  area: Area
  metadata: Metadata
  rooms(ids: [String!]): [Room!]!
  zones(ids: [String!]): [Zone!]!
  "null (not an empty list) on floors without sensors, as the real API returns"
  sensors: [Sensor!]
  hives: [Hive!]!
  tags: [Tag!]!
  floor_plans: JSON
  last_battery_change_date: Time
  next_battery_change_date: Time
  client_id: String
}
type Floors { data: [Floor!]! }

type Room {
  id: ID!
  name: String!
  floor_id: String!
  floorID: String @deprecated(reason: "use floor_id")
  floor: Floor
  roomType: String
  customID: String
  capacity: Capacity!
  area: Area
  coordinates: [[Float!]!]
  rotation: Float
  note: String
  tags: [Tag!]!
  sensors: [Sensor!]!
  metadata: Metadata
  pir_zero_enable: Boolean
  pir_zero_threshold: Float
  pir_zero_window: Int
}
type Rooms { data: [Room!]! }

type Zone {
  id: ID!
  name: String!
  floor_id: String!
  "decorative: zones and rooms are siblings under a floor"
  room_id: String
  "legacy camelCase twin of floor_id (Butlr's own client selects it)"
  floorID: String
  "legacy camelCase twin of room_id; null (no error) for a zone outside any room"
  roomID: String
  floor: Floor
  customID: String
  capacity: Capacity!
  area: Area
  coordinates: [[Float!]!]
  rotation: Float
  note: String
  tags: [Tag!]!
  sensors: [Sensor!]!
}
type Zones { data: [Zone!]! }

type Sensor {
  id: ID!
  sensor_id: String @deprecated(reason: "use id")
  name: String!
  mac_address: String
  sensor_serial: String
  mode: String
  model: String
  client_id: String
  floor_id: String
  room_id: String
  hive_id: String
  hive_serial: String
  zone_ids: [String!]!
  is_entrance: Boolean!
  parallel_to_door: Boolean
  door_line: JSON
  in_direction: JSON
  height: Float
  center: JSON
  orientation: JSON
  field_of_view: Float
  sensitivity: Float
  note: String
  metadata: Metadata
  is_online: Boolean!
  is_streaming: Boolean!
  last_heartbeat: Int
  last_raw_message: Int
  last_occupancy_message: Int
  last_compressed_message: Int
  last_detection_message: Int
  power_type: String
  battery_change_by_date: Time
  next_battery_change_date: Time
  last_battery_change_date: Time
  estimated_total_runtime_days: Int
  installation_status: String
  "legacy resolver: errors when the sensor has no floor"
  floorID: String
  "legacy resolver: errors when the sensor has no room"
  roomID: String
  "legacy resolver: errors when the sensor has no hive"
  hiveID: String
  floor: Floor
  room: Room
  hive: Hive
}
type Sensors { data: [Sensor!]! }

type Hive {
  id: ID!
  name: String!
  serialNumber: String
  floor_id: String
  floorID: String
  room_id: String
  roomID: String
  hiveVersion: String
  hiveType: String
  coordinates: [Float!]
  note: String
  installed: Boolean!
  isOnline: Boolean!
  isStreaming: Boolean!
  lastHeartbeat: Int
  lastRawMessage: Int
  lastOccupancyMessage: Int
  lastDetectionMessage: Int
  lastCompressedMessage: Int
  lastNetworkId: String
  netPathStability: Float!
  privateIP: String
  sensors: [Sensor!]!
}
type Hives { data: [Hive!]! }

type Tag {
  id: ID!
  name: String!
  organization_id: String
  rooms: [Room!]!
  zones: [Zone!]!
  floors: [Floor!]!
}

enum EventType {
  __EVENT_TYPES__
}
type ApiKey { key: String value: String }
type BasicAuth { username: String password: String }
type EndpointConfig { url: String! http_timeout: Int api_key: ApiKey basic_auth: BasicAuth }
type Webhook {
  id: ID!
  org_id: String
  name: String!
  event_types: [EventType!]!
  endpoint_config: EndpointConfig!
  status: Boolean!
  filters: JSON
  send_on_value_change: Boolean!
}

input ApiKeyInput { key: String! value: String! }
input BasicAuthInput { username: String! password: String! }
"Field names are undocumented: both camelCase and snake_case spellings are accepted."
input EndpointConfigInput {
  url: String!
  httpTimeout: Int
  http_timeout: Int
  apiKey: ApiKeyInput
  api_key: ApiKeyInput
  basicAuth: BasicAuthInput
  basic_auth: BasicAuthInput
}
input WebhookCreateInput {
  name: String!
  eventTypes: [EventType!]!
  endpointConfig: EndpointConfigInput!
  filters: JSON
  send_on_value_change: Boolean
}
input WebhookUpdateInput {
  id: ID!
  name: String
  eventTypes: [EventType!]
  endpointConfig: EndpointConfigInput
  filters: JSON
  send_on_value_change: Boolean
}

type Query {
  sites: Sites!
  site(id: ID, customID: ID): Site
  buildings: Buildings!
  building(id: ID, customID: ID): Building
  floors(ids: [String!]): Floors!
  floor(id: ID, customID: ID): Floor
  rooms(ids: [String!]): Rooms!
  room(id: ID, customID: ID): Room
  zones(ids: [String!]): Zones!
  zone(id: ID, customID: ID): Zone
  "placeholder hives (serial 'fake...' or empty) are left out unless returnPlaceholders is true"
  hives(ids: [String!], serial_numbers: [String!], returnPlaceholders: Boolean): Hives!
  "floor_ids, room_ids, hive_ids and hive_serials are accepted but ignored, as in the real API"
  sensors(
    ids: [String!]
    mac_addresses: [String!]
    floor_ids: [String!]
    room_ids: [String!]
    hive_ids: [String!]
    hive_serials: [String!]
  ): Sensors!
  tags(ids: [String!]): [Tag!]!
  floorsByTag(tagIDs: [String!]!, useOR: Boolean): Floors!
  roomsByTag(tagIDs: [String!]!, useOR: Boolean): Rooms!
  zonesByTag(tagIDs: [String!]!, useOR: Boolean): Zones!
  webhooks: [Webhook!]!
}

type Mutation {
  createWebhooks(input: [WebhookCreateInput!]!): [Webhook!]!
  updateWebhooks(input: [WebhookUpdateInput!]!): [Webhook!]!
  deleteWebhooks(ids: [ID!]!): Boolean!
}
"""

SCHEMA_SDL = _SDL.replace("__EVENT_TYPES__", "\n  ".join(EVENT_TYPES))
