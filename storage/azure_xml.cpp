// Azure Blob XML bodies (see azure_xml.hpp).
#include "common/http_client.hpp"
#include "storage/azure_xml.hpp"

#include <pugixml.hpp>

#include <cctype>

namespace stowage::storage::azure {
namespace {

constexpr std::size_t kMaxMessage = 200;

bool load(pugi::xml_document& doc, std::string_view xml) {
  return static_cast<bool>(doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8));
}

std::string first_line(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  text = text.substr(0, text.find_first_of("\r\n"));
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text.size() > kMaxMessage) return std::string(text.substr(0, kMaxMessage)) + "...";
  return std::string(text);
}



}  // namespace

ErrorBody parse_error_body(std::string_view xml) {
  ErrorBody out;
  pugi::xml_document doc;
  if (xml.empty() || !load(doc, xml)) return out;
  pugi::xml_node error = doc.child("Error");
  if (!error) return out;
  out.code = error.child("Code").text().as_string();
  out.message = first_line(error.child("Message").text().as_string());
  return out;
}

Result<BlobList, std::string> parse_blob_list(std::string_view xml) {
  pugi::xml_document doc;
  if (!load(doc, xml)) return Err("List Blobs answer is not XML");
  pugi::xml_node results = doc.child("EnumerationResults");
  if (!results) return Err("List Blobs answer has no EnumerationResults element");
  BlobList list;
  for (pugi::xml_node blob : results.child("Blobs").children("Blob")) {
    pugi::xml_node name = blob.child("Name");
    if (!name) return Err("List Blobs answer has a Blob without a Name");
    // Names that are not valid XML text come percent-encoded, marked Encoded="true" (2020-10-02+).
    std::string text = name.text().as_string();
    list.names.push_back(name.attribute("Encoded").as_bool() ? http::percent_decode(text) : text);
  }
  list.next_marker = results.child("NextMarker").text().as_string();
  return list;
}

}  // namespace stowage::storage::azure
