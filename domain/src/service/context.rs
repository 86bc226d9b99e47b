//! What a rule hook gets: the open transaction, who acts, the time, and the events it emits.

use serde_json::{Map, Value, json};

use super::attributes::changed_attributes;
use crate::{
    Actor, DomainError, Row, Timestamp,
    events::ChangeEvent,
    ports::{Ports, Session},
    schema::ResourceSchema,
};

/// What a hook may touch: the open transaction, who acts, the time, the ports, events.
pub struct Ctx<'a> {
    pub tx: &'a mut dyn Session,
    pub actor: &'a Actor,
    pub now: Timestamp,
    pub ports: &'a Ports,
    pub(super) events: Vec<ChangeEvent>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(
        tx: &'a mut dyn Session,
        actor: &'a Actor,
        now: Timestamp,
        ports: &'a Ports,
    ) -> Self {
        Self {
            tx,
            actor,
            now,
            ports,
            events: Vec::new(),
        }
    }

    /// Records an event to be written to the outbox in this transaction; returns its id.
    pub fn emit(
        &mut self,
        event_type: &str,
        schema: &ResourceSchema,
        resource_id: &str,
        data: Value,
    ) -> String {
        let id = self.ports.ids.new_id("evt_");
        self.events.push(ChangeEvent {
            id: id.clone(),
            event_type: event_type.to_owned(),
            resource_type: schema.type_name.to_owned(),
            resource_id: resource_id.to_owned(),
            data,
            actor: self.actor.clone(),
            created_at: self.now,
        });
        id
    }

    /// `<name>.<action>` with the resource as `data.object`.
    pub fn emit_change(
        &mut self,
        schema: &ResourceSchema,
        action: &str,
        row: &Row,
        previous: Option<Map<String, Value>>,
    ) {
        let mut data = json!({"object": schema.public_object(row)});
        if let Some(previous) = previous {
            data["previous_attributes"] = Value::Object(previous);
        }
        data["actor_id"] = json!(self.actor.user_id);
        let id = row
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let event_type = format!("{}.{action}", event_name(schema));
        self.emit(&event_type, schema, &id, data);
    }

    /// Saves a changed row of another resource (a cascade), with its `updated` event.
    pub async fn save_cascade(
        &mut self,
        schema: &ResourceSchema,
        before: &Row,
        mut after: Row,
    ) -> Result<Row, DomainError> {
        let previous = changed_attributes(schema, before, &after);
        if previous.is_empty() {
            return Ok(after);
        }
        after.insert("updated_at".into(), json!(self.now.millis()));
        self.tx.save(schema.type_name, before, &after).await?;
        self.emit_change(schema, "updated", &after, Some(previous));
        Ok(after)
    }
}

/// `user` for `users`, `api_key` for `api_keys`: the event-type stem.
pub fn event_name(schema: &ResourceSchema) -> &'static str {
    schema
        .type_name
        .strip_suffix('s')
        .unwrap_or(schema.type_name)
}
