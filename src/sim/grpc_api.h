#pragma once
// TF Serving's gRPC surface (model_servers/prediction_service_impl.cc, model_service_impl.cc,
// servables/tensorflow/predict_util.cc, get_model_metadata_impl.cc) as tfs-sim serves it: the
// same models, versions, labels and model-state faults as the REST side (it asks RestApi for
// every lookup). Pure: request message in, response message or TF status out. No sockets, no
// clock, no randomness; the latency/error/hang/reset faults are the server's business.
//
// Encodings:
//  - Predict accepts input "x" as DT_FLOAT in float_val (a single value fills the whole shape,
//    fewer values are padded with the last one, as TF's Tensor::FromProto does) or in
//    tensor_content (little-endian float32, exactly 4 bytes per element); any rank, the shape
//    (batch dimension included) is kept. Output "y" is DT_FLOAT with the input's shape, written
//    in float_val, as TF Serving writes outputs (Tensor::AsProtoField).
//  - Classify and Regress read feature "x" (a float_list with exactly one value) of every
//    tf.Example; context features apply to every example, the example's own win.
//  - MultiInference is not served: UNIMPLEMENTED.

#include <vector>

#include "sim/faults.h"
#include "sim/model.h"
#include "sim/rest_api.h"
#include "tensorflow_serving/apis/classification.pb.h"
#include "tensorflow_serving/apis/get_model_metadata.pb.h"
#include "tensorflow_serving/apis/get_model_status.pb.h"
#include "tensorflow_serving/apis/inference.pb.h"
#include "tensorflow_serving/apis/predict.pb.h"
#include "tensorflow_serving/apis/regression.pb.h"

namespace tfs_sim {

class GrpcApi {
 public:
  // `rest` outlives this object; it owns the model list, version and labels.
  explicit GrpcApi(const RestApi& rest) : rest_(rest) {}

  // Each call fills `response` only when the returned status is OK. `faults` supplies
  // model_state / version / not_available_status for the models it applies to.
  TfStatus predict(const tensorflow::serving::PredictRequest& request, const FaultSet& faults,
                   tensorflow::serving::PredictResponse& response) const;
  TfStatus classify(const tensorflow::serving::ClassificationRequest& request,
                    const FaultSet& faults,
                    tensorflow::serving::ClassificationResponse& response) const;
  TfStatus regress(const tensorflow::serving::RegressionRequest& request, const FaultSet& faults,
                   tensorflow::serving::RegressionResponse& response) const;
  TfStatus multi_inference(const tensorflow::serving::MultiInferenceRequest& request,
                           const FaultSet& faults,
                           tensorflow::serving::MultiInferenceResponse& response) const;
  TfStatus get_model_metadata(const tensorflow::serving::GetModelMetadataRequest& request,
                              const FaultSet& faults,
                              tensorflow::serving::GetModelMetadataResponse& response) const;
  TfStatus get_model_status(const tensorflow::serving::GetModelStatusRequest& request,
                            const FaultSet& faults,
                            tensorflow::serving::GetModelStatusResponse& response) const;

 private:
  // Classify and Regress: the model applied to feature "x" of every example, and the spec that
  // served them (`served` is written only on success).
  TfStatus run_examples(const tensorflow::serving::ModelSpec& spec,
                        const tensorflow::serving::Input& input, const FaultSet& faults,
                        const char* own_signature, tensorflow::serving::ModelSpec& served,
                        std::vector<float>& ys) const;

  const RestApi& rest_;
};

// The type URL TF Serving packs the signature_def metadata entry with.
inline constexpr const char* kSignatureDefMapTypeUrl =
    "type.googleapis.com/tensorflow.serving.SignatureDefMap";

}  // namespace tfs_sim
