// SPDX-License-Identifier: Apache-2.0
// The OpenAPI 3 document of `vstore serve`, served at /openapi.json.
#pragma once

#include <nlohmann/json.hpp>

namespace vstore {

/// Every route of the service with its request and answer schemas, and the bearer scheme.
[[nodiscard]] nlohmann::json openapi_document();

}  // namespace vstore
