//! The simulated `basicdeviceinfo.cgi`: `getAllProperties` with the camera's model, product
//! name, firmware version and serial (see [`super::roster::facts`]); 404 on firmware too old
//! to have it.

use serde_json::{json, Map, Value};

use super::camera::Camera;
use super::http::{Body, Request, Response};

pub(crate) fn handle(cam: &Camera, req: &Request) -> Response {
    let Some(facts) = &cam.facts else {
        return Response::plain_status(404);
    };
    let Body::Full(body) = &req.body else {
        return error(None, 4000, "Request too large");
    };
    let obj: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => obj,
        _ => return error(None, 4000, "Invalid JSON"),
    };
    let context = obj.get("context").cloned();
    match obj.get("method").and_then(Value::as_str) {
        Some("getAllProperties" | "getAllUnrestrictedProperties") => {}
        Some(_) => return error(context, 2002, "Method not supported"),
        None => return error(context, 4000, "Invalid request"),
    }
    let mut answer = json!({
        "apiVersion": "1.3",
        "data": { "propertyList": {
            "Architecture": "aarch64",
            "Brand": "AXIS",
            "BuildDate": "Oct 14 2026 09:12",
            "HardwareID": "9A1",
            "ProdFullName": facts.product,
            "ProdNbr": facts.model,
            "ProdShortName": format!("AXIS {}", facts.model),
            "ProdType": "Network Camera",
            "ProdVariant": "",
            "SerialNumber": facts.serial,
            "Soc": "Axis Artpec-8",
            "Version": facts.firmware,
            "WebURL": "http://www.axis.com"
        }}
    });
    if let (Some(context), Some(obj)) = (context, answer.as_object_mut()) {
        obj.insert("context".to_owned(), context);
    }
    Response::json(200, answer.to_string())
}

fn error(context: Option<Value>, code: i64, message: &str) -> Response {
    let mut answer = json!({ "apiVersion": "1.3", "error": { "code": code, "message": message } });
    if let (Some(context), Some(obj)) = (context, answer.as_object_mut()) {
        obj.insert("context".to_owned(), context);
    }
    Response::json(200, answer.to_string())
}
