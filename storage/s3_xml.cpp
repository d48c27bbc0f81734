// S3 XML documents with pugixml: see s3_xml.hpp.
#include "common/http_client.hpp"
#include "storage/s3_xml.hpp"

#include <pugixml.hpp>

#include <cstring>
#include <sstream>

namespace stowage::storage::s3 {
namespace {

// Keep text exactly as sent: a key may be all spaces (parse_ws_pcdata_single) or hold a CR that
// end-of-line normalisation would turn into LF (no parse_eol).
constexpr unsigned kParseFlags = (pugi::parse_default & ~pugi::parse_eol) | pugi::parse_ws_pcdata_single;

// The element's name without a namespace prefix ("s3:Key" -> "Key").
std::string_view local_name(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

pugi::xml_node child(const pugi::xml_node& parent, std::string_view name) {
  for (auto node = parent.first_child(); node; node = node.next_sibling())
    if (node.type() == pugi::node_element && local_name(node) == name) return node;
  return {};
}

std::string text_of(const pugi::xml_node& parent, std::string_view name) {
  return child(parent, name).child_value();
}

bool load(pugi::xml_document& doc, std::string_view xml) {
  return doc.load_buffer(xml.data(), xml.size(), kParseFlags, pugi::encoding_utf8);
}

pugi::xml_node root_named(const pugi::xml_document& doc, std::string_view name) {
  pugi::xml_node root = doc.document_element();
  return root && local_name(root) == name ? root : pugi::xml_node{};
}



}  // namespace

std::optional<ErrorBody> parse_error(std::string_view xml) {
  pugi::xml_document doc;
  if (xml.empty() || !load(doc, xml)) return std::nullopt;
  pugi::xml_node root = root_named(doc, "Error");
  if (!root) return std::nullopt;
  ErrorBody out;
  out.code = text_of(root, "Code");
  out.message = text_of(root, "Message");
  out.request_id = text_of(root, "RequestId");
  out.region = text_of(root, "Region");
  out.endpoint = text_of(root, "Endpoint");
  if (out.code.empty()) return std::nullopt;
  return out;
}

Result<ListPage, std::string> parse_list_objects_v2(std::string_view xml) {
  pugi::xml_document doc;
  if (!load(doc, xml)) return Err("ListObjectsV2 answer is not XML");
  pugi::xml_node root = root_named(doc, "ListBucketResult");
  if (!root) return Err("ListObjectsV2 answer is not a ListBucketResult document");
  const bool url_encoded = text_of(root, "EncodingType") == "url";

  ListPage page;
  for (auto node = root.first_child(); node; node = node.next_sibling()) {
    if (node.type() != pugi::node_element || local_name(node) != "Contents") continue;
    pugi::xml_node key = child(node, "Key");
    if (!key) return Err("ListObjectsV2 answer has an entry without a Key");
    page.keys.push_back(url_encoded ? http::form_decode(key.child_value()) : std::string(key.child_value()));
  }
  page.truncated = text_of(root, "IsTruncated") == "true";
  if (page.truncated) {
    page.next_continuation_token = text_of(root, "NextContinuationToken");
    if (page.next_continuation_token.empty())
      return Err("ListObjectsV2 answer is truncated but has no NextContinuationToken");
  }
  return page;
}

std::string delete_objects_body(const std::vector<std::string>& keys, bool quiet) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child("Delete");
  root.append_attribute("xmlns") = "http://s3.amazonaws.com/doc/2006-03-01/";
  root.append_child("Quiet").text() = quiet ? "true" : "false";
  for (const auto& key : keys) root.append_child("Object").append_child("Key").text() = key.c_str();
  std::ostringstream out;
  out << R"(<?xml version="1.0" encoding="UTF-8"?>)";
  doc.save(out, "", pugi::format_raw | pugi::format_no_declaration, pugi::encoding_utf8);
  return out.str();
}

Result<DeleteResult, std::string> parse_delete_result(std::string_view xml) {
  pugi::xml_document doc;
  if (!load(doc, xml)) return Err("DeleteObjects answer is not XML");
  pugi::xml_node root = root_named(doc, "DeleteResult");
  if (!root) return Err("DeleteObjects answer is not a DeleteResult document");
  DeleteResult result;
  for (auto node = root.first_child(); node; node = node.next_sibling()) {
    if (node.type() != pugi::node_element) continue;
    if (local_name(node) == "Deleted") {
      result.deleted.emplace_back(text_of(node, "Key"));
    } else if (local_name(node) == "Error") {
      result.errors.push_back({text_of(node, "Key"), text_of(node, "Code"), text_of(node, "Message")});
    }
  }
  return result;
}

}  // namespace stowage::storage::s3
