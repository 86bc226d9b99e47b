//! Component schemas of each resource type: attributes, relationships, resource objects,
//! documents and write requests.

use super::*;

pub(super) fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

pub(super) fn ty(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(t)
}

pub(super) fn nullable_type(t: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([t, Type::Null])
    } else {
        SchemaType::new(t)
    }
}

pub(super) fn string() -> RefOr<Schema> {
    ty(Type::String).into()
}

pub(super) fn any_object() -> RefOr<Schema> {
    ty(Type::Object).into()
}

pub(super) fn array_of(item: RefOr<Schema>) -> RefOr<Schema> {
    ArrayBuilder::new().items(item).into()
}

pub(super) fn nullable_ref(name: &str) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(reference(name))
        .item(ty(Type::Null))
        .into()
}

pub(super) fn attribute_schema(attr: &AttrSpec) -> RefOr<Schema> {
    let base = match attr.ty {
        AttrType::Text { min, max } => ObjectBuilder::new()
            .schema_type(nullable_type(Type::String, attr.nullable))
            .min_length(Some(min))
            .max_length(Some(max)),
        AttrType::Int { min, max } => ObjectBuilder::new()
            .schema_type(nullable_type(Type::Integer, attr.nullable))
            .minimum(Some(min as f64))
            .maximum(Some(max as f64)),
        AttrType::Bool => {
            ObjectBuilder::new().schema_type(nullable_type(Type::Boolean, attr.nullable))
        }
        AttrType::Enum(values) => {
            let mut all: Vec<Value> = values.iter().map(|v| json!(v)).collect();
            if attr.nullable {
                all.push(Value::Null);
            }
            ObjectBuilder::new()
                .schema_type(nullable_type(Type::String, attr.nullable))
                .enum_values(Some(all))
        }
        AttrType::Timestamp => ObjectBuilder::new()
            .schema_type(nullable_type(Type::String, attr.nullable))
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            ))),
        AttrType::TextList { max_items } => {
            let list = ArrayBuilder::new()
                .schema_type(nullable_type(Type::Array, attr.nullable))
                .items(string())
                .max_items(Some(max_items));
            return list.into();
        }
        AttrType::Object => ObjectBuilder::new()
            .schema_type(nullable_type(Type::Object, attr.nullable))
            .additional_properties(Some(AdditionalProperties::FreeForm(true))),
    };
    let read_only = attr.on_create == OnCreate::Never && attr.on_update == OnUpdate::Never;
    let mut notes = Vec::new();
    if attr.private {
        notes.push("Shown to admins only.");
    }
    if attr.on_update == OnUpdate::AdminOnly {
        notes.push("Only admins may change it.");
    }
    if attr.on_create != OnCreate::Never && attr.on_update == OnUpdate::Never {
        notes.push("Set on create only.");
    }
    let base = base.read_only(read_only).write_only(attr.write_only);
    let base = if notes.is_empty() {
        base
    } else {
        base.description(Some(notes.join(" ")))
    };
    base.into()
}

pub(super) fn type_name_pascal(type_name: &str) -> String {
    type_name
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

pub(super) fn type_const(type_name: &str) -> RefOr<Schema> {
    ty(Type::String).enum_values(Some([type_name])).into()
}

/// The `data` of a relationship: identifiers of its target, an array when to-many.
fn linkage_data(rel: &RelSpec) -> RefOr<Schema> {
    let target = type_name_pascal(rel.target);
    if rel.is_to_many() {
        array_of(reference(&format!("{target}Identifier")))
    } else {
        nullable_ref(&format!("{target}Identifier"))
    }
}

pub(super) fn relationship_schema(rel: &RelSpec) -> RefOr<Schema> {
    let data = linkage_data(rel);
    let object = ty(Type::Object)
        .property("data", data)
        .property("links", reference("RelationshipLinks"))
        .property("meta", any_object());
    let object = if rel.private {
        object.description(Some("Shown to admins only."))
    } else {
        object
    };
    object.into()
}

pub(super) fn linkage_input(rel: &RelSpec) -> RefOr<Schema> {
    let data = linkage_data(rel);
    ty(Type::Object)
        .property("data", data)
        .required("data")
        .into()
}

pub(super) fn resource_schemas(
    mut components: ComponentsBuilder,
    schema: &ResourceSchema,
    writable: bool,
) -> ComponentsBuilder {
    let name = type_name_pascal(schema.type_name);
    let mut attributes =
        ty(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for attr in schema.all_attributes().filter(|a| !a.write_only) {
        attributes = attributes.property(attr.name, attribute_schema(attr));
    }
    let mut relationships = ty(Type::Object);
    for rel in schema.relationships {
        relationships = relationships.property(rel.name, relationship_schema(rel));
    }
    let id: RefOr<Schema> = ty(Type::String)
        .pattern(Some(format!(
            "^{}[0-9A-HJKMNP-TV-Z]{{26}}$",
            schema.id_prefix
        )))
        .into();
    let identifier = ty(Type::Object)
        .property("type", type_const(schema.type_name))
        .property("id", id.clone())
        .property("meta", any_object())
        .required("type")
        .required("id");
    let resource = ty(Type::Object)
        .property("type", type_const(schema.type_name))
        .property("id", id.clone())
        .property("attributes", reference(&format!("{name}Attributes")))
        .property("relationships", reference(&format!("{name}Relationships")))
        .property("links", reference("ResourceLinks"))
        .property("meta", any_object())
        .required("type")
        .required("id");
    let single = top_level(
        ty(Type::Object)
            .property("data", reference(&name))
            .required("data"),
    );
    let collection = top_level(
        ty(Type::Object)
            .property("data", array_of(reference(&name)))
            .required("data"),
    );
    components = components
        .schema(format!("{name}Attributes"), attributes)
        .schema(format!("{name}Relationships"), relationships)
        .schema(format!("{name}Identifier"), identifier)
        .schema(name.clone(), resource)
        .schema(format!("{name}Document"), single)
        .schema(format!("{name}CollectionDocument"), collection);
    if !writable {
        return components;
    }
    let mut create =
        ty(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let mut update =
        ty(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for attr in schema.attributes {
        if attr.on_create != OnCreate::Never {
            create = create.property(attr.name, attribute_schema(attr));
            if attr.on_create == OnCreate::Required {
                create = create.required(attr.name);
            }
        }
        if attr.on_update != OnUpdate::Never {
            update = update.property(attr.name, attribute_schema(attr));
        }
    }
    let mut create_rels = ty(Type::Object);
    let mut update_rels = ty(Type::Object);
    for rel in schema.relationships {
        if rel.on_create != OnCreate::Never {
            create_rels = create_rels.property(rel.name, linkage_input(rel));
            if rel.on_create == OnCreate::Required {
                create_rels = create_rels.required(rel.name);
            }
        }
        if rel.on_update != OnUpdate::Never {
            update_rels = update_rels.property(rel.name, linkage_input(rel));
        }
    }
    let create_request = ty(Type::Object)
        .property(
            "data",
            ty(Type::Object)
                .property("type", type_const(schema.type_name))
                .property("lid", string())
                .property("attributes", create)
                .property("relationships", create_rels)
                .required("type"),
        )
        .required("data");
    let update_request = ty(Type::Object)
        .property(
            "data",
            ty(Type::Object)
                .property("type", type_const(schema.type_name))
                .property("id", id)
                .property("attributes", update)
                .property("relationships", update_rels)
                .required("type")
                .required("id"),
        )
        .required("data");
    components
        .schema(format!("{name}CreateRequest"), create_request)
        .schema(format!("{name}UpdateRequest"), update_request)
}

/// A top-level document: `data` as given plus `included`, `links`, `meta`, `jsonapi`.
pub(super) fn top_level(data: ObjectBuilder) -> ObjectBuilder {
    data.property("included", array_of(reference("Resource")))
        .property("links", reference("DocumentLinks"))
        .property("meta", any_object())
        .property("jsonapi", reference("JsonApi"))
}
