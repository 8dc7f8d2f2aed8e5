"""Adam with each variable's update in one fused TensorFlow kernel.

Keras's `Adam.update_step` writes Adam's arithmetic as some twenty small
graph operations per variable (powers, casts, three assignments and the
elementwise terms between them), each run by TensorFlow's executor and each
a pass over the variable. `tf.raw_ops.ResourceApplyAdam` does the same
arithmetic in one kernel and one pass:

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
    w -= alpha * m / (sqrt(v) + epsilon)

which is Keras's update term for term. What it saves (most where variables
are large, as the VAE's) is measured in README's "Speed".
"""

import keras
import tensorflow as tf


def _handle(variable):
    """The resource handle of a Keras variable (its TensorFlow variable's)."""
    return variable.value.handle if isinstance(variable, keras.Variable) else variable.handle


@keras.saving.register_keras_serializable(package="aekeras")
class Adam(keras.optimizers.Adam):
    """Keras's `Adam`, with the same arguments and results, updating each variable in one kernel.

    What the fused kernel does not cover takes Keras's own update: AMSGrad,
    sparse gradients, variables that are not float32, and training under a
    `tf.distribute` strategy (whose variables update per replica). Clipping,
    weight decay, moving averages, gradient accumulation and learning-rate
    schedules are Keras's, before and around the update, as for `Adam`.
    `BaseAutoencoder.compile` uses it for `optimizer="adam"`, and
    `aekeras train` always.
    """

    def update_step(self, gradient, variable, learning_rate):
        if (
            self.amsgrad
            or isinstance(gradient, tf.IndexedSlices)
            or variable.dtype != "float32"
            or tf.distribute.has_strategy()
        ):
            return super().update_step(gradient, variable, learning_rate)
        step = tf.cast(self.iterations + 1, tf.float32)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(tf.cast(self.beta_1, tf.float32), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, tf.float32), step),
            lr=tf.cast(learning_rate, tf.float32),
            beta1=tf.cast(self.beta_1, tf.float32),
            beta2=tf.cast(self.beta_2, tf.float32),
            epsilon=tf.cast(self.epsilon, tf.float32),
            grad=tf.cast(gradient, tf.float32),
        )
